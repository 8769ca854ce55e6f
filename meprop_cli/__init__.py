"""meprop-cli: experiment runner for meProp (top-k sparsified back propagation) and its baselines."""

__version__ = "0.1.0"
