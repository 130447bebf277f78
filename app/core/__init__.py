"""The engine: data, models, training, checkpoints, analysis. Never imports Qt."""
