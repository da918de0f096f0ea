// ArbiterFormats: checkpoint, golden-data and image formats.
