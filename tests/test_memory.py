"""MEPROP_MALLOC=reuse keeps freed memory in the process for the next step's tensors (meprop_cli/__init__.py)."""
import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

# In a fresh interpreter: the policy is set once, at import. Prints whether it was set and how many bytes glibc
# holds in mmapped blocks while an 8 MB tensor lives (mallinfo2's hblkhd): kept memory is heap, not mmapped.
PROBE = textwrap.dedent("""
    import ctypes
    import meprop_cli
    import torch

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                          "fsmblks", "uordblks", "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    before = mallinfo2().hblkhd
    t = torch.ones(2 << 20)
    print(meprop_cli.MALLOC_REUSE, mallinfo2().hblkhd - before)
""")


def probe(**env: str) -> tuple[bool, int]:
    done = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True)
    reuse, mmapped = done.stdout.split()
    return reuse == "True", int(mmapped)


def has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")  # glibc 2.33 and later
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not has_mallinfo2(),
                    reason="the policy is glibc's mallopt; the probe needs its mallinfo2")
def test_large_tensors_come_from_the_kept_heap_only_with_malloc_reuse():
    assert probe(MEPROP_MALLOC="reuse") == (True, 0)
    for default in ({}, {"MEPROP_MALLOC": "system"}):
        reuse, mmapped = probe(**default)
        assert not reuse and mmapped >= 8 << 20  # glibc's own policy: an 8 MB block is mapped, unmapped when freed
