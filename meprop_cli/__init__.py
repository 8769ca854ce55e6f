"""meprop-cli: experiment runner for meProp (top-k sparsified back propagation) and its baselines."""

import ctypes
import os
import sys

# Before torch allocates anything: large CPU tensors on 2 MB pages. A first touch of a fresh 96 MB
# gradient (parsing batch) costs ~130 ms in 4 KB page faults on the project's VMs and ~25 ms so.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def _reuse_freed_memory() -> bool:
    """With MEPROP_MALLOC=reuse: keep freed memory in the process, so that the next step's tensors reuse it instead
    of faulting in fresh pages. Off by default: measured, it is not a clear win (docs/kernels.md, session 9).

    glibc hands every block above its mmap threshold back to the system when it is freed, and with torch's 2 MB
    page alignment (THP_MEM_ALLOC_ENABLE) that is every tensor of 2 MB or more: each step's activations and
    gradients are new memory, every page of it faulted in again. torch.zeros of 5.5 MB (POS's dense weight
    gradient) took 0.71 ms, of 96 MB 12.2 ms; with both thresholds at 1 GiB 0.11 and 3.7 ms (medians of 20). But
    whole training steps did not follow: POS's baseline step took 130 ms with it against 105 ms without, parse's
    meProp step 877 against 804 ms, MNIST's 1.71 against 1.96 ms (one run each, minutes apart). Returns whether
    it was set."""
    if os.environ.get("MEPROP_MALLOC", "system") != "reuse" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc; musl and others have no mallopt: nothing changes there
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 1 << 30))


MALLOC_REUSE = _reuse_freed_memory()

__version__ = "0.1.0"
