"""Large backward outputs that keep their memory from one step to the next.

A fresh CPU tensor of more than 32 MiB is new memory from the system every time (glibc maps each allocation above
its largest mmap threshold afresh and unmaps it when freed), and the first write to each of its pages faults. At
the parsing batch the input gradient of the first layer is such a tensor (10,000 × 2400 floats, 96 MB): written
fresh, `g_k @ W_k` took 36.7 ms, written into memory that already had its pages 20.6 ms (median of 9, one
thread, idle; docs/kernels.md, session 8). The backward of meProp and of its dense baseline therefore write such
outputs into the buffer the same layer shape returned last time, when nothing else holds it any more.

Safe by construction: a buffer is handed out again only when its storage has no user but this cache (the
autograd engine, a hook, a retained .grad or a view of it all count), so a gradient that someone kept is never
overwritten; then a fresh tensor is made and cached instead. A leaf whose .grad took this memory (as a view)
holds it, so the next step gets fresh memory while that .grad lives. One cache per thread,
so two threads running backward passes never share a buffer. GPUs have their own caching allocator: not here.
"""
from __future__ import annotations

import math
import threading

import torch

REUSE_BYTES = 32 << 20  # glibc's largest dynamic mmap threshold on 64-bit: below it freed memory is reused anyway


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.by_key: dict[tuple, torch.Tensor] = {}


_cache = _PerThread()
_use_count = getattr(torch._C, "_storage_Use_Count", None)  # private torch API; without it nothing is reused


def _only_cached(t: torch.Tensor) -> bool:
    # 2: the cache's tensor and the temporary storage object made to ask
    return _use_count(t.untyped_storage()._cdata) <= 2


def output(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialized tensor to write a backward's result into: for large CPU tensors the memory of the
    last one of this shape and dtype if nothing uses it any more, else a fresh one (see the module doc)."""
    shape = tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if device.type != "cpu" or nbytes < REUSE_BYTES or _use_count is None:
        return torch.empty(shape, dtype=dtype, device=device)
    key = (shape, dtype)
    held = _cache.by_key.get(key)
    if held is not None and _only_cached(held):
        return held
    fresh = torch.empty(shape, dtype=dtype, device=device)
    _cache.by_key[key] = fresh
    return fresh


def clear() -> None:
    """Drop this thread's buffers (their memory goes back once nothing else holds it)."""
    _cache.by_key.clear()
