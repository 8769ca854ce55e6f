"""meProp autograd functions and kernels. Knows nothing of tasks or training."""
from meprop_cli.ops.meprop import (MODES, SelectionState, Sparsity, meprop_linear, sparsified_linear, sparsify,
                                   topk_indices)
from meprop_cli.ops.timing import linear_backward_timer

__all__ = ["MODES", "SelectionState", "Sparsity", "meprop_linear", "sparsified_linear", "sparsify", "topk_indices",
           "linear_backward_timer"]
