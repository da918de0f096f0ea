// ArbiterPlots: line charts, heatmaps and bar charts rendered to PNG.
