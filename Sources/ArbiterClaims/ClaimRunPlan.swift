// The plan of a claim run (`arbiter verify --plan`): the run's own items, prepared as the run prepares them
// when the folder has a tokenizer and weights, or synthetic prompts of the given length from config.json alone.
import ArbiterAnalyses
import ArbiterData
import ArbiterFormats
import ArbiterModels
import Foundation

public enum ClaimRunPlan {
    /// The plan of `ClaimRun.evaluate(input)`. A folder without tokenizer.json or weights is planned from its
    /// config.json: `promptTokens` per prompt (default: the image's tokens + `VerifyPlan.defaultTextTokens`).
    /// `promptTokens` given for a folder that can tokenize replaces the measured lengths too.
    public static func make(_ input: ClaimRunInput, promptTokens: Int? = nil,
                            assumptions: PlanAssumptions = PlanAssumptions(),
                            progress: (String) -> Void = { _ in }) throws -> VerifyPlan {
        let shape = try PlanModelShape.shape(of: input.model)
        let folder = input.model
        let runnable = FileManager.default.fileExists(atPath: folder.appendingPathComponent("tokenizer.json").path)
            && (try? ModelDirectory(folder).checkpoint()) != nil
        var a = assumptions
        a.canGenerate = input.data == nil
        let samples: [AnalysisSample]
        let dataset: String
        let began = Date()
        var preparation = 0.0
        var pilot: PlanPilot?
        if runnable && promptTokens == nil {
            progress("tokenizing the items as the run does")
            let session = try ModelSession(directory: folder, layout: input.layout)
            let (set, name, _) = try ClaimRun.items(input, imageSize: session.imageSize)
            samples = try SamplePreparation.prepare(try ProbeItems.make(set), session: session, policy: input.policy)
                .samples
            dataset = name
            preparation = Date().timeIntervalSince(began)
            pilot = PlanPilot(session: session)
        } else {
            let imageTokens = shape.vision?.imageTokens ?? 0
            let (set, name, _) = try ClaimRun.items(input, imageSize: shape.vision == nil ? nil : imageSide(folder))
            let tokens = promptTokens ?? imageTokens + VerifyPlan.defaultTextTokens
            samples = try VerifyPlan.syntheticSamples(try ProbeItems.make(set), promptTokens: tokens,
                                                      imageTokens: imageTokens)
            dataset = name + " (synthetic prompts of \(tokens) tokens, \(imageTokens) of them image tokens)"
        }
        let median = samples.map { $0.input.ids.count }.sorted()[samples.count / 2]
        progress("calibrating \(shape.modelType) layer shapes at \(median) tokens"
                 + (pilot == nil ? "" : ", then piloting a few of each stage's passes on the model"))
        let calibration = try PlanCalibration.measure(shape: shape, tokens: median)
        return try VerifyPlan.make(model: input.name ?? ClaimRun.displayName(of: folder), shape: shape,
                                   samples: samples, dataset: dataset,
                                   configuration: ClaimRun.configuration(input.settings), assumptions: a,
                                   calibration: calibration, keyValueBudget: input.settings.keyValueBudget,
                                   streamBudget: input.settings.streamBudget, preparationSeconds: preparation,
                                   pilot: pilot)
    }

    /// The side of the images the generator draws for the model (`ImageModel.defaultImageSide`, from
    /// config.json alone).
    static func imageSide(_ folder: URL) throws -> Int? {
        try ModelRegistry.shape(folder).shape.imageSide
    }
}
