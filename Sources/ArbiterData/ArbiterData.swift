// ArbiterData: conflict benchmark generator and dataset loaders.
