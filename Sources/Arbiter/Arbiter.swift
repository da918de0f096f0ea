// `import Arbiter`: every layer a researcher scripting an analysis in Swift uses, in one import — tensors,
// formats, tokenizers, models and hooks, interventions, data, analyses, claims and plots.
@_exported import ArbiterAnalyses
@_exported import ArbiterClaims
@_exported import ArbiterData
@_exported import ArbiterFormats
@_exported import ArbiterInterventions
@_exported import ArbiterModels
@_exported import ArbiterPlots
@_exported import ArbiterTensor
@_exported import ArbiterTokenizers
