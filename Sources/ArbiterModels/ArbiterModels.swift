// ArbiterModels: configurations, registry, architectures, hook points.
