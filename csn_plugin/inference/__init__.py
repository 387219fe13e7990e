"""Inference: a pattern on the model grid -> posterior over the 230 groups -> ClassificationResult."""
