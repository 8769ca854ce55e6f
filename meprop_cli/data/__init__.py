"""Dataset readers and downloads. Knows nothing of models or training."""
