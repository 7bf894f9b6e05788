"""Training data: examples, the dataset store, stats, splits, file formats, validation, exports and transcripts."""
