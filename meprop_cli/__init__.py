"""meprop-cli: experiment runner for meProp (top-k sparsified back propagation) and its baselines."""

import os

# Before torch allocates anything: large CPU tensors on 2 MB pages. A first touch of a fresh 96 MB
# gradient (parsing batch) costs ~130 ms in 4 KB page faults on the project's VMs and ~25 ms so.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
