"""The compiled meProp kernels (kernels.c), built on first use, with a pure-torch twin for each.

kernels.c is plain C with pthreads: it compiles in about a second with the system's C compiler into
a cache folder and is called through ctypes. When no compiler works, or MEPROP_KERNELS=torch, every
function here runs its torch twin instead: same results, only slower. Only float32 tensors on the CPU
go to C; anything else takes the torch path. The choice is made per call, by the tensors themselves (_c):
a model on a GPU (trainer.device=cuda) runs every meProp op on torch's paths on that GPU, while a run on
the CPU keeps the kernels. The torch twins allocate on their inputs' device, so they run anywhere.

    MEPROP_KERNELS      "auto" (default: C if it builds, else torch) | "torch" (never C)
    MEPROP_KERNEL_DIR   where the built library is kept (default ~/.cache/meprop-cli)
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from meprop_cli.ops import buffers

log = logging.getLogger("meprop")

SOURCE = Path(__file__).with_name("kernels.c")
# Tried in order: the first that compiles is used (no -march=native on compilers that reject it).
FLAG_SETS = (["-O3", "-march=native", "-fno-math-errno"], ["-O3"])

_lib: ctypes.CDLL | None = None
_tried = False


def _cpu_signature() -> str:
    """What -march=native depends on, so a library built on another CPU is never loaded."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _cache_dir() -> Path:
    configured = os.environ.get("MEPROP_KERNEL_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meprop-cli"


def compiler() -> str | None:
    """The C compiler the kernels are built with: $CC, else cc, else gcc; None when there is none."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build() -> ctypes.CDLL | None:
    cc = compiler()
    if cc is None:
        log.warning("no C compiler found: meProp backward uses the slower pure-torch path")
        return None
    source = SOURCE.read_bytes()
    for flags in FLAG_SETS:
        key = hashlib.sha256(source + " ".join([cc, *flags]).encode() + _cpu_signature().encode()).hexdigest()
        for folder in (_cache_dir(), Path(tempfile.gettempdir()) / "meprop-cli"):
            target = folder / f"meprop_kernels_{key[:16]}.so"
            try:
                if not target.exists():
                    folder.mkdir(parents=True, exist_ok=True)
                    # build beside the target and rename: concurrent first uses never see half a file
                    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
                    os.close(fd)
                    done = subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", tmp, str(SOURCE), "-lpthread",
                                           "-lm"], capture_output=True, text=True, timeout=300)
                    if done.returncode != 0:
                        os.unlink(tmp)
                        log.debug("building %s with %s failed: %s", SOURCE.name, flags, done.stderr.strip())
                        break  # next flag set
                    os.replace(tmp, target)
                return _declare(ctypes.CDLL(str(target)))
            except OSError as e:  # unwritable cache folder, or a library that does not load: try the next
                log.debug("meProp kernels in %s: %s", folder, e)
    log.warning("could not build %s: meProp backward uses the slower pure-torch path", SOURCE.name)
    return None


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    signatures = {
        "meprop_select_topk": [p, i32, p, i64, i64, i64, p, p, i32],
        "meprop_grad_input": [p, p, p, i64, i64, i64, i64, p, i32],
        "meprop_grad_weight": [p, p, p, i64, i64, i64, p, i64, p, i32],
        "meprop_grad_bias": [p, p, i64, p, i64, p],
        "meprop_row_map": [p, i64, i64, p, p],
        "meprop_thin_nn": [p, p, p, i64, i64, i64, i32],
        "meprop_thin_tn": [p, p, p, i64, i64, i64, i32],
        "meprop_column_abs_sum": [p, i64, i64, p],
        "meprop_adam_rows": [p, p, p, p, p, i64, i64, f32, f32, f32, f32, f32, f32, f32, i32],
        "meprop_adagrad_rows": [p, p, p, p, i64, i64, f32, f32, f32, i32],
        "meprop_select_maps": [p, i64, i64, p, i64, i64, i64, i64, p, p, i32],
        "meprop_conv_grads": [p, p, i64, i64, p, p, *[i64] * 10, p, p, i32],
        "meact_forward": [p, p, p, p, p, i64, i64, i64, p, i32],
        "meact_grad_input": [p, p, p, p, i64, i64, i64, p, i32],
        "meact_grad_weight": [p, p, p, p, i64, i64, i64, p, i32],
        "meact_plan": [p, p, i64, i64, f32, p, p, p],
        "meact_merge": [p, p, p, p, p, i64, i64, p],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = i64 if name in ("meprop_row_map", "meact_plan") else None
    return lib


def library() -> ctypes.CDLL | None:
    """The built kernels, or None when the torch path is in use (MEPROP_KERNELS=torch, no compiler)."""
    global _lib, _tried
    if os.environ.get("MEPROP_KERNELS", "auto") == "torch":
        return None
    if not _tried:
        _tried = True
        _lib = _build()
    return _lib


def backend() -> str:
    """"c" or "torch": which implementation the functions below run."""
    return "c" if library() is not None else "torch"


def _c(*tensors: torch.Tensor, copied: tuple[torch.Tensor, ...] = ()) -> ctypes.CDLL | None:
    """The library if every tensor can go to C (float32 / int64, contiguous, on the CPU), else None: the torch
    twin. This is the one place the choice is made. `copied`: tensors the caller copies into C's layout itself,
    which need only be on the CPU."""
    lib = library()
    if lib is None:
        return None
    for t in tensors:
        if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.int64) or not t.is_contiguous():
            return None
    if any(t.device.type != "cpu" for t in copied):
        return None
    return lib


def _threads() -> int:
    return torch.get_num_threads()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


# -- selection ------------------------------------------------------------------------------------

def select_topk(g: torch.Tensor, k: int, score: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the k entries of largest |g| (or largest score): (idx, g at idx), both (rows, k).

    C keeps ties deterministic (the lower index wins) and returns each row's indices ascending; the
    torch twin uses torch.topk, whose order and tie-breaking are its own.
    """
    g = g.contiguous()
    source = g if score is None else score.contiguous()
    lib = _c(g, source)
    if lib is None or g.dtype != torch.float32 or source.dtype != torch.float32:
        idx = (g.abs() if score is None else source).topk(k, dim=1, sorted=False).indices
        return idx, g.gather(1, idx)
    return _select_c(lib, g, source, score is None, k, _threads())


# The _*_c helpers make the C calls on tensors already checked by _c (float32 / int64, contiguous, CPU): the
# public functions check their own inputs, topk_backward checks once for all four kernels.

def _select_c(lib: ctypes.CDLL, g: torch.Tensor, source: torch.Tensor, by_abs: bool, k: int, threads: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    rows, n = g.shape
    idx = torch.empty(rows, k, dtype=torch.int64)
    val = torch.empty(rows, k, dtype=g.dtype)
    lib.meprop_select_topk(_ptr(source), int(by_abs), _ptr(g), rows, n, k, _ptr(idx), _ptr(val), threads)
    return idx, val


def _dense(idx: torch.Tensor, val: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(idx.shape[0], n, dtype=val.dtype, device=val.device).scatter_(1, idx, val)


# -- products -------------------------------------------------------------------------------------

def grad_input(idx: torch.Tensor, val: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """top_k(g) W from the kept entries: (rows, in_features)."""
    weight = weight.contiguous()
    lib = _c(idx, val, weight)
    if lib is None or val.dtype != torch.float32 or weight.dtype != torch.float32:
        return _dense(idx, val, weight.shape[0]) @ weight
    return _grad_input_c(lib, idx, val, weight, _threads())


def _grad_input_c(lib: ctypes.CDLL, idx: torch.Tensor, val: torch.Tensor, weight: torch.Tensor, threads: int
                  ) -> torch.Tensor:
    rows, k = idx.shape
    n, m = weight.shape
    out = buffers.output((rows, m), weight.dtype, weight.device)
    lib.meprop_grad_input(_ptr(val), _ptr(idx), _ptr(weight), rows, k, n, m, _ptr(out), threads)
    return out


def touched_rows(idx: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of W that get gradient, ascending, and pos: pos[o] = place of row o in rows, else -1."""
    idx = idx.contiguous()
    lib = _c(idx)
    if lib is None:
        rows = torch.unique(idx)
        pos = torch.full((n,), -1, dtype=torch.int64, device=idx.device)
        pos[rows] = torch.arange(len(rows), device=idx.device)
        return rows, pos
    return _touched_rows_c(lib, idx, n)


def _touched_rows_c(lib: ctypes.CDLL, idx: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    pos = torch.empty(n, dtype=torch.int64)
    rows = torch.empty(n, dtype=torch.int64)
    r = lib.meprop_row_map(_ptr(idx), idx.numel(), n, _ptr(pos), _ptr(rows))
    return rows[:r], pos


def grad_weight(idx: torch.Tensor, val: torch.Tensor, x: torch.Tensor, n: int,
                rows: torch.Tensor | None = None, pos: torch.Tensor | None = None) -> torch.Tensor:
    """top_k(g)ᵀ x: all n rows (rows=None), or only the listed rows (pos from touched_rows)."""
    x = x.contiguous()
    lib = _c(idx, val, x)
    if lib is None or val.dtype != torch.float32 or x.dtype != torch.float32:
        dense = _dense(idx, val, n)
        return (dense if rows is None else dense.index_select(1, rows)).t() @ x
    return _grad_weight_c(lib, idx, val, x, n, rows, pos, _threads())


def _grad_weight_c(lib: ctypes.CDLL, idx: torch.Tensor, val: torch.Tensor, x: torch.Tensor, n: int,
                   rows: torch.Tensor | None, pos: torch.Tensor | None, threads: int) -> torch.Tensor:
    b, k = idx.shape
    m = x.shape[1]
    r = n if rows is None else len(rows)
    out = torch.empty(r, m, dtype=x.dtype)
    lib.meprop_grad_weight(_ptr(val), _ptr(idx), _ptr(x), b, k, m, _ptr(pos) if rows is not None else None, r,
                           _ptr(out), threads)
    return out


def grad_bias(idx: torch.Tensor, val: torch.Tensor, n: int, rows: torch.Tensor | None = None,
              pos: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_batch top_k(g): all n entries (rows=None), or only the listed rows."""
    lib = _c(idx, val)
    if lib is None or val.dtype != torch.float32:
        dense = torch.zeros(n, dtype=val.dtype, device=val.device).index_add_(0, idx.reshape(-1), val.reshape(-1))
        return dense if rows is None else dense[rows]
    return _grad_bias_c(lib, idx, val, n, rows, pos)


def _grad_bias_c(lib: ctypes.CDLL, idx: torch.Tensor, val: torch.Tensor, n: int, rows: torch.Tensor | None,
                 pos: torch.Tensor | None) -> torch.Tensor:
    r = n if rows is None else len(rows)
    out = torch.empty(r, dtype=val.dtype)
    lib.meprop_grad_bias(_ptr(val), _ptr(idx), idx.numel(), _ptr(pos) if rows is not None else None, r, _ptr(out))
    return out


def topk_backward(g: torch.Tensor, k: int, score: torch.Tensor | None, weight: torch.Tensor, x: torch.Tensor,
                  need_x: bool, need_w: bool, need_b: bool, touched_only: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None,
                             torch.Tensor | None, torch.Tensor | None]:
    """The per-example meProp backward of y = x Wᵀ + b in one call: select_topk, then grad_input, grad_weight
    and grad_bias as asked. Returns (idx, val, dx, dW, db, rows): touched_only=True gives dW and db for the
    touched rows only, and those rows (ascending); else rows is None.

    The same results as the four functions called in turn; the tensors are checked once, not once per
    kernel: at batch 10 that saves 10-20 of MNIST layer 1's 67-82 µs of kernel calls (docs/kernels.md).
    """
    g, weight, x = g.contiguous(), weight.contiguous(), x.contiguous()
    source = g if score is None else score.contiguous()
    lib = _c(g, source, weight, x)
    if lib is None or any(t.dtype != torch.float32 for t in (g, source, weight, x)):
        idx, val = select_topk(g, k, score)
        rows = pos = None
        if touched_only and (need_w or need_b):
            rows, pos = touched_rows(idx, weight.shape[0])
        return (idx, val, grad_input(idx, val, weight) if need_x else None,
                grad_weight(idx, val, x, weight.shape[0], rows, pos) if need_w else None,
                grad_bias(idx, val, weight.shape[0], rows, pos) if need_b else None, rows)
    threads, n = _threads(), weight.shape[0]
    idx, val = _select_c(lib, g, source, score is None, k, threads)
    rows = pos = None
    if touched_only and (need_w or need_b):
        rows, pos = _touched_rows_c(lib, idx, n)
    return (idx, val, _grad_input_c(lib, idx, val, weight, threads) if need_x else None,
            _grad_weight_c(lib, idx, val, x, n, rows, pos, threads) if need_w else None,
            _grad_bias_c(lib, idx, val, n, rows, pos) if need_b else None, rows)


# -- unified top-k: one index set for the batch, so the products are dense and thin ----------------
# Below these sizes torch's own ops are as fast or faster (a ctypes call and its checks cost ~6 µs; at batch 10
# torch.mm took 8.4 µs where this path took 13.6; at 1000 × 20 × 2400 the two tied), so C runs only above them.
THIN_C_MIN = 1 << 26  # multiply-adds of a thin product (parsing's batch 10,000: 4.8e8; Table 7: 2.7e8)
COLUMN_SUM_C_MIN = 1 << 16  # entries of g (at 10 × 500 torch took 6.6 µs, C 8.2; at 1000 × 500 0.081 and 0.043 ms)


def column_abs_sum(g: torch.Tensor) -> torch.Tensor:
    """Σ over the rows of |g|, per column: the unified selection's scores, (n,). C reads g once; torch's
    g.abs().sum(0) writes |g| out first (at parsing's 10,000 × 500: 4.1 against 0.56 ms, docs/kernels.md)."""
    if g.numel() < COLUMN_SUM_C_MIN:  # first: at batch 10 even the checks below cost more than they save
        return g.abs().sum(0)
    g = g.contiguous()
    lib = _c(g)
    if lib is None or g.dtype != torch.float32:
        return g.abs().sum(0)
    out = torch.empty(g.shape[1], dtype=g.dtype)
    lib.meprop_column_abs_sum(_ptr(g), g.shape[0], g.shape[1], _ptr(out))
    return out


def thin_product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """a b for a (rows × k) and b (k × m) with k small (the unified backward's g_k W_k): (rows × m), written
    into out when given (contiguous, the right shape)."""
    if a.numel() * b.shape[1] < THIN_C_MIN:
        return torch.mm(a, b, out=out)
    a, b = a.contiguous(), b.contiguous()
    lib = _c(a, b, *([] if out is None else [out]))
    if lib is None or a.dtype != torch.float32 or b.dtype != torch.float32:
        return torch.mm(a, b, out=out)
    rows, k = a.shape
    m = b.shape[1]
    out = torch.empty(rows, m, dtype=a.dtype) if out is None else out
    lib.meprop_thin_nn(_ptr(a), _ptr(b), _ptr(out), rows, k, m, _threads())
    return out


def thin_product_t(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """aᵀ x for a (rows × k) with k small and x (rows × m) (the unified backward's g_kᵀ x): (k × m)."""
    if a.numel() * x.shape[1] < THIN_C_MIN:
        return a.t() @ x
    a, x = a.contiguous(), x.contiguous()
    lib = _c(a, x)
    if lib is None or a.dtype != torch.float32 or x.dtype != torch.float32:
        return a.t() @ x
    rows, k = a.shape
    m = x.shape[1]
    out = torch.empty(k, m, dtype=a.dtype)
    lib.meprop_thin_tn(_ptr(a), _ptr(x), _ptr(out), rows, k, m, _threads())
    return out


# -- meProp-CNN: feature maps of a convolution's output gradient -----------------------------------

def select_maps(g: torch.Tensor, k: int, score: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per feature map of g (batch, C, h, w), the k entries of largest |g| (or of largest score, a
    (C, batch·h·w) tensor): (positions p = n·h·w + i·w + j, g there), both (C, k), positions ascending.

    C breaks ties towards the lower position; the torch twin keeps torch.topk's choice among ties.
    """
    batch, channels, height, width = g.shape
    g = g.contiguous()
    score = None if score is None else score.contiguous()
    lib = _c(g, *([] if score is None else [score]))
    if lib is None or g.dtype != torch.float32 or (score is not None and score.dtype != torch.float32):
        g_maps = g.transpose(0, 1).reshape(channels, -1)
        source = g_maps.abs() if score is None else score
        positions = source.topk(k, dim=1, sorted=False).indices.sort(dim=1).values
        return positions, g_maps.gather(1, positions)
    hw = height * width
    pos = torch.empty(channels, k, dtype=torch.int64)
    val = torch.empty(channels, k, dtype=g.dtype)
    # strides of a map and of an example: g is read in place; score is (C, batch·h·w)
    source, map_stride, example_stride = (g, hw, channels * hw) if score is None else (score, batch * hw, hw)
    lib.meprop_select_maps(_ptr(source), map_stride, example_stride, _ptr(g), batch, channels, hw, k, _ptr(pos),
                           _ptr(val), _threads())
    return pos, val


def scatter_maps(shape: torch.Size, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The kept entries of select_maps as a dense (batch, C, h, w) tensor, the others zero."""
    batch, channels, height, width = shape
    kept = values.new_zeros(channels, batch * height * width).scatter_(1, positions, values)
    return kept.reshape(channels, batch, height, width).transpose(0, 1).contiguous()


def conv_grads(x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
               positions: torch.Tensor, values: torch.Tensor, out_shape: torch.Size, need_input: bool,
               need_weight: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """∂L/∂x and ∂L/∂W of y = conv2d(x, W) (dilation 1, one group) from the kept entries of ∂L/∂y.

    C visits only the kept entries; the torch twin runs torch's dense convolution backward on the
    zero-filled gradient (faster on a CPU than torch's sparse products here, see scripts/bench_conv.py).
    """
    lib = _c(positions, values, copied=(x, weight))  # x and W are copied to channels-last below
    if lib is None or values.dtype != torch.float32 or x.dtype != torch.float32 or weight.dtype != torch.float32:
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            scatter_maps(out_shape, positions, values), x, weight, None, list(stride), list(padding), [1, 1],
            False, [0, 0], 1, [need_input, need_weight, False])
        return grad_x, grad_w
    batch, c_in, height, width = x.shape
    channels, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    padded = (batch, height + 2 * ph, width + 2 * pw, c_in)  # channels-last: a window row is one run
    x_padded = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1).contiguous() if need_weight else None
    weight_last = weight.permute(0, 2, 3, 1).contiguous() if need_input else None
    grad_w = torch.empty(channels, kh, kw, c_in) if need_weight else None
    grad_padded = torch.zeros(padded) if need_input else None
    lib.meprop_conv_grads(_ptr(positions), _ptr(values), channels, positions.shape[1], _ptr(x_padded),
                          _ptr(weight_last), *padded, out_shape[2], out_shape[3], kh, kw, sh, sw, _ptr(grad_w),
                          _ptr(grad_padded), _threads())
    grad_x = grad_padded[:, ph:ph + height, pw:pw + width].permute(0, 3, 1, 2).contiguous() if need_input else None
    return grad_x, None if grad_w is None else grad_w.permute(0, 3, 1, 2).contiguous()


# -- meAct: the active (example, neuron) pairs of a layer, in CSR (offsets (B+1,), cols (E,)) -------------

def pair_rows(offsets: torch.Tensor) -> torch.Tensor:
    """The example (row) of every pair: (E,)."""
    counts = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(len(counts), device=offsets.device), counts)


def csr(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets (rows + 1,), cols (E,)) of the True entries of a (rows, n) mask; each row's cols ascending."""
    offsets = torch.zeros(mask.shape[0] + 1, dtype=torch.int64, device=mask.device)
    torch.cumsum(mask.sum(1), 0, out=offsets[1:])
    return offsets, mask.nonzero()[:, 1].contiguous()


def _pairs_dense(offsets: torch.Tensor, cols: torch.Tensor, val: torch.Tensor, n: int) -> torch.Tensor:
    dense = val.new_zeros(len(offsets) - 1, n)
    dense[pair_rows(offsets), cols] = val
    return dense


def active_plan(grad_sum: torch.Tensor, ids: torch.Tensor, threshold: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The active pairs of the examples ids (rows of grad_sum), by the threshold rule of ops/meact.py:
    (offsets, cols, rows, flat), flat = ids[rows] · n + cols (the pairs' places in the memory)."""
    ids = ids.contiguous()
    lib = _c(grad_sum, ids)
    if lib is None or grad_sum.dtype != torch.float32:
        record = grad_sum.index_select(0, ids)
        total = record.sum(1, keepdim=True)
        mask = record >= threshold * total
        mask.scatter_(1, record.argmax(1, keepdim=True), True)  # never none: the largest stays
        mask[~(total.squeeze(1) > 0)] = True  # nothing recorded yet: compute all
        offsets, cols = csr(mask)
        rows = pair_rows(offsets)
        return offsets, cols, rows, ids[rows] * grad_sum.shape[1] + cols
    b, n = len(ids), grad_sum.shape[1]
    offsets = torch.empty(b + 1, dtype=torch.int64)
    cols = torch.empty(b * n, dtype=torch.int64)
    flat = torch.empty(b * n, dtype=torch.int64)
    e = lib.meact_plan(_ptr(grad_sum), _ptr(ids), b, n, threshold, _ptr(offsets), _ptr(cols), _ptr(flat))
    return offsets, cols[:e], pair_rows(offsets), flat[:e]


def active_merge(last: torch.Tensor, ids: torch.Tensor, offsets: torch.Tensor, cols: torch.Tensor,
                 rows: torch.Tensor, flat: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The layer's output: each example's row of last with its active pairs replaced by a; last takes a too."""
    lib = _c(last, ids, offsets, cols, a)
    if lib is None or last.dtype != torch.float32 or a.dtype != torch.float32:
        out = last.index_select(0, ids).to(a.dtype)
        out.view(-1)[rows * last.shape[1] + cols] = a
        last.view(-1).index_copy_(0, flat, a.detach().to(last.dtype))
        return out
    b, n = len(ids), last.shape[1]
    out = torch.empty(b, n, dtype=a.dtype)
    lib.meact_merge(_ptr(last), _ptr(ids.contiguous()), _ptr(offsets), _ptr(cols), _ptr(a.detach()), b, n, _ptr(out))
    return out


def active_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, offsets: torch.Tensor,
                   cols: torch.Tensor) -> torch.Tensor:
    """x Wᵀ + b at the active pairs only: (E,). The torch twin computes the whole product and reads the
    pairs from it (the same values, no saving)."""
    x, weight = x.contiguous(), weight.contiguous()
    bias = None if bias is None else bias.contiguous()
    lib = _c(x, weight, offsets, cols, *([] if bias is None else [bias]))
    if lib is None or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return F.linear(x, weight, bias)[pair_rows(offsets), cols]
    y = torch.empty(len(cols), dtype=x.dtype)
    lib.meact_forward(_ptr(x), _ptr(weight), _ptr(bias), _ptr(offsets), _ptr(cols), x.shape[0], x.shape[1],
                      weight.shape[0], _ptr(y), _threads())
    return y


def active_grad_input(offsets: torch.Tensor, cols: torch.Tensor, val: torch.Tensor, weight: torch.Tensor
                      ) -> torch.Tensor:
    """Σ over each example's active pairs of val · W[col]: (B, in_features)."""
    weight = weight.contiguous()
    lib = _c(offsets, cols, val, weight)
    if lib is None or val.dtype != torch.float32 or weight.dtype != torch.float32:
        return _pairs_dense(offsets, cols, val, weight.shape[0]) @ weight
    rows, (n, m) = len(offsets) - 1, weight.shape
    out = torch.empty(rows, m, dtype=weight.dtype)
    lib.meact_grad_input(_ptr(val), _ptr(offsets), _ptr(cols), _ptr(weight), rows, m, n, _ptr(out), _threads())
    return out


def active_grad_weight(offsets: torch.Tensor, cols: torch.Tensor, val: torch.Tensor, x: torch.Tensor, n: int
                       ) -> torch.Tensor:
    """Σ over the pairs of neuron o of val · x[example]: the (n, in_features) weight gradient."""
    x = x.contiguous()
    lib = _c(offsets, cols, val, x)
    if lib is None or val.dtype != torch.float32 or x.dtype != torch.float32:
        return _pairs_dense(offsets, cols, val, n).t() @ x
    out = torch.empty(n, x.shape[1], dtype=x.dtype)
    lib.meact_grad_weight(_ptr(val), _ptr(offsets), _ptr(cols), _ptr(x), x.shape[0], x.shape[1], n, _ptr(out),
                          _threads())
    return out


# -- row-sparse optimizer updates -----------------------------------------------------------------

def adam_rows(param: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, grad: torch.Tensor,
              rows: torch.Tensor | None, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
              step: int) -> None:
    """torch.optim.Adam's update applied in place to the given rows only (rows=None: every row).

    grad holds one row per entry of rows (coalesced: no row twice).
    """
    bc1, bc2_sqrt = 1 - beta1 ** step, (1 - beta2 ** step) ** 0.5
    lib = _c(param, exp_avg, exp_avg_sq, grad, *([] if rows is None else [rows]))
    if lib is None or param.dtype != torch.float32 or grad.dtype != torch.float32:
        p, m, v = (t if rows is None else t.index_select(0, rows) for t in (param, exp_avg, exp_avg_sq))
        g = grad.view_as(p) + weight_decay * p if weight_decay else grad.view_as(p)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(eps), value=-lr / bc1)
        if rows is not None:
            for target, source in ((param, p), (exp_avg, m), (exp_avg_sq, v)):
                target.index_copy_(0, rows, source)
        return
    r = param.shape[0] if rows is None else len(rows)
    cols = param[0].numel() if param.dim() > 1 else 1
    lib.meprop_adam_rows(_ptr(param), _ptr(exp_avg), _ptr(exp_avg_sq), _ptr(grad), _ptr(rows), r, cols, lr, beta1,
                         beta2, eps, weight_decay, bc1, bc2_sqrt, _threads())


def adagrad_rows(param: torch.Tensor, state_sum: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor | None, *,
                 lr: float, eps: float, weight_decay: float) -> None:
    """torch.optim.Adagrad's update (lr_decay 0) applied in place to the given rows only (rows=None: all)."""
    lib = _c(param, state_sum, grad, *([] if rows is None else [rows]))
    if lib is None or param.dtype != torch.float32 or grad.dtype != torch.float32:
        p, s = (t if rows is None else t.index_select(0, rows) for t in (param, state_sum))
        g = grad.view_as(p) + weight_decay * p if weight_decay else grad.view_as(p)
        s.addcmul_(g, g, value=1)
        p.addcdiv_(g, s.sqrt().add_(eps), value=-lr)
        if rows is not None:
            param.index_copy_(0, rows, p)
            state_sum.index_copy_(0, rows, s)
        return
    r = param.shape[0] if rows is None else len(rows)
    cols = param[0].numel() if param.dim() > 1 else 1
    lib.meprop_adagrad_rows(_ptr(param), _ptr(state_sum), _ptr(grad), _ptr(rows), r, cols, lr, eps, weight_decay,
                            _threads())
