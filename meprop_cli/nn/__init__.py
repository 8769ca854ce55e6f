"""Layers built on the meProp ops: linear (MLP) now; the LSTM cell and convolution build on the same ops."""
from meprop_cli.nn.conv import MePropConv2d
from meprop_cli.nn.linear import MeActLinear, MePropLinear
from meprop_cli.nn.mlp import MLP

__all__ = ["MeActLinear", "MePropConv2d", "MePropLinear", "MLP"]
