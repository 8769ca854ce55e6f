"""trainer.device: where a run trains, and the plumbing that makes a GPU run right, tested on the CPU.

On a GPU the meProp ops take their torch paths (the compiled kernels are CPU-only). Here those paths are forced
with MEPROP_KERNELS=torch and run with torch's default device set to "meta": a tensor a torch path made without
asking its inputs' device would land there and fail, as it would stay on the CPU beside CUDA inputs. The tests
marked `cuda` train on a GPU and are skipped where there is none (tests/conftest.py).
"""
from __future__ import annotations

import dataclasses
import io
import json
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import torch

from meprop_cli import results
from meprop_cli import train as trainer
from meprop_cli.errors import ConfigError
from meprop_cli.ops import SelectionState, meprop_linear, native, timing
from meprop_cli.ops.conv import GradientStats, MePropConv2dFunction, meprop_conv2d
from meprop_cli.ops.meact import ActivityMemory, MeActLinearFunction, meact_linear
from meprop_cli.ops.meprop import MePropLinearFunction
from meprop_cli.optim import LazyAdagrad, LazyAdam
from meprop_cli.tasks.base import LabeledBatch, to_device
from meprop_cli.train import resolve_device, train

sys.path.insert(0, str(Path(__file__).parent / "tasks"))
sys.path.insert(0, str(Path(__file__).parent / "tasks" / "parse"))
from test_mnist_cnn import tiny_mnist  # noqa: E402, F401  (a fixture)
from test_parse_task import TREES, tiny_overrides, write_treebank  # noqa: E402
from test_pos import TINY, write_tiny_ewt  # noqa: E402

QUICK = ["trainer.progress=none", "task.hidden=[32,32]", "trainer.max_steps_per_epoch=20"]

# -- trainer.device ----------------------------------------------------------------------------------


def test_auto_is_cuda_only_when_torch_sees_a_gpu_and_cpu_is_always_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_is_a_config_error_naming_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^trainer.device=cuda needs a CUDA GPU, and torch .* sees none; use "
                                          r"trainer.device=cpu \(or auto\)"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_sentence_and_exit_2_before_any_data_is_read(tmp_path):
    from conftest import run_meprop

    run_dir = tmp_path / "run"
    done = run_meprop(["train", "task=mnist_mlp", "trainer.device=cuda", f"data_root={tmp_path / 'no-data'}",
                       f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("meprop: error: trainer.device=cuda needs a CUDA GPU") and "Traceback" not in done.stderr
    assert "not found" not in done.stderr  # the device is checked before the (missing) data is looked for
    record = json.loads((run_dir / results.RESULT_FILE).read_text())
    assert record["status"] == "failed" and record["error"].startswith("trainer.device=cuda needs a CUDA GPU")
    assert not (run_dir / results.CONFIG_FILE).exists()


@pytest.mark.parametrize("setting", ["cpu", "auto"])
def test_a_cpu_run_records_its_device_and_which_meprop_backward_ran(make_cfg, tmp_path, backend, setting):
    if setting == "auto" and torch.cuda.is_available():
        pytest.skip("auto is cuda on this machine")
    record = train(make_cfg(["method=meprop", "topk=10", f"trainer.device={setting}", "trainer.max_epochs=1",
                             *QUICK]), tmp_path)
    on_disk = json.loads((tmp_path / results.RESULT_FILE).read_text())
    assert record["status"] == "completed"
    assert (on_disk[results.DEVICE], on_disk[results.GPU], on_disk[results.KERNELS]) == ("cpu", None, backend)
    assert results.read_checkpoint(tmp_path / results.LAST_CHECKPOINT)["device"] == "cpu"


# -- the torch paths a GPU runs: the kernels' results, on the inputs' device --------------------------


BACKWARDS = (MePropLinearFunction, MePropConv2dFunction, MeActLinearFunction)


def on_meta(backward):
    def wrapped(ctx, *grads):
        with torch.device("meta"):
            return backward(ctx, *grads)
    return staticmethod(wrapped)


@contextmanager
def torch_paths_on_the_inputs_device():
    """The torch paths (as on a GPU), with torch's default device "meta": a tensor made there by an op that did
    not ask its inputs' device mixes with the CPU inputs and fails, or comes back on the wrong device. (Autograd
    runs a backward outside the default-device block it was called in, so the block is entered again inside.)"""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEPROP_KERNELS", "torch")
        for function in BACKWARDS:
            patch.setattr(function, "backward", on_meta(function.backward))
        with torch.device("meta"):
            yield


# Each family makes its inputs on the CPU, then calls its ops (forward, backward, step) inside `paths`.

def linear_family(mode: str, decay: float = 0.0, sparse_grad: bool = False):
    def family(paths):
        torch.manual_seed(0)
        x, w, b = (torch.randn(*s).requires_grad_() for s in ((12, 30), (40, 30), (40,)))
        g = torch.randn(12, 40)
        state = SelectionState()
        state.start_record(40)  # meSimp's record of the kept outputs
        for _ in range(2):  # twice: run_grad (decay) and the record carry from the first step to the second
            x.grad = w.grad = b.grad = None
            with paths():
                meprop_linear(x, w, b, 7, mode, decay=decay, state=state, sparse_grad=sparse_grad).backward(g)
            g = g.roll(1, dims=0)
        return [x.grad, w.grad, b.grad, state.hits, state.run_grad]
    return family


def conv_family(decay: float):
    def family(paths):
        torch.manual_seed(1)
        x, w, b = (torch.randn(*s).requires_grad_() for s in ((3, 2, 9, 9), (4, 2, 3, 3), (4,)))
        gs = [torch.randn(3, 4, 9, 9) * (step + 1) for step in range(2)]
        state, stats = SelectionState(), GradientStats()
        for g in gs:
            with paths():
                meprop_conv2d(x, w, b, 1, 1, 0.1, decay=decay, state=state, stats=stats).backward(g)
        return [x.grad, w.grad, b.grad, state.run_grad, torch.tensor(stats.kept_sum)]
    return family


def meact_family(paths):
    torch.manual_seed(2)
    memory = ActivityMemory(20, 16, threshold=0.05)
    memory.grad_sum.copy_(torch.rand(20, 16) ** 4)  # skewed records: most neurons inactive
    memory.grad_sum[3] = 0  # never recorded: computes every neuron
    memory.last.copy_(torch.randn(20, 16))
    memory.ids, memory.acting = torch.tensor([3, 0, 7, 19, 11]), True
    x, w, b = (torch.randn(*s).requires_grad_() for s in ((5, 8), (16, 8), (16,)))
    g = torch.randn(5, 16)
    with paths():
        meact_linear(x, w, b, "relu", memory).backward(g)
        active = memory.active(memory.ids)
    return [x.grad, w.grad, b.grad, memory.grad_sum, memory.last, active]


def optimizer_family(optimizer):
    def family(paths):
        torch.manual_seed(3)
        w = torch.nn.Parameter(torch.randn(40, 30))
        opt = optimizer([w], lr=0.1)
        for x, g in zip(torch.randn(3, 6, 30), torch.randn(3, 6, 40)):
            with paths():
                meprop_linear(x, w, None, 5, sparse_grad=True).backward(g)
                opt.step()
            opt.zero_grad(set_to_none=True)
        return [w.detach(), *(v for v in opt.state[w].values() if torch.is_tensor(v))]
    return family


FAMILIES = {
    "linear_topk": linear_family("topk"), "linear_unified": linear_family("unified"),
    "linear_random": linear_family("random"), "linear_decay": linear_family("topk", decay=0.6),
    "linear_sparse_rows": linear_family("topk", sparse_grad=True),
    "conv": conv_family(0.0), "conv_decay": conv_family(0.6),
    "meact": meact_family, "lazy_adam": optimizer_family(LazyAdam), "lazy_adagrad": optimizer_family(LazyAdagrad),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_torch_paths_give_the_kernels_results_on_their_inputs_device(name):
    if native.library() is None:
        pytest.skip("no C compiler: only the torch path exists here")
    family = FAMILIES[name]
    kernels = family(nullcontext)
    torch_paths = family(torch_paths_on_the_inputs_device)
    assert native.backend() == "c"  # the switch was only for the ops' calls
    for got, want in zip(torch_paths, kernels, strict=True):
        if want is None:
            assert got is None
            continue
        got, want = (t.to_dense() if t.is_sparse else t for t in (got, want))
        assert got.device == torch.device("cpu")
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_to_device_moves_every_tensor_of_a_batch_and_keeps_the_rest(make_cfg, tmp_path):
    from meprop_cli.tasks import build_task

    labeled = LabeledBatch(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.arange(2))
    moved = to_device(labeled, torch.device("meta"))
    assert type(moved) is LabeledBatch and all(t.device.type == "meta" for t in moved)

    cfg = make_cfg([*TINY, f"data_root={write_tiny_ewt(tmp_path)}"])
    task = build_task(cfg.task, tmp_path)
    task.load()
    batch = next(task.train_batches(torch.Generator().manual_seed(0)))
    task.device = torch.device("meta")
    moved = task.to_device(batch)
    assert type(moved) is type(batch) and type(moved.packing) is type(batch.packing)
    for name in ("words", "features", "tags"):
        assert getattr(moved, name).device.type == "meta" and getattr(batch, name).device.type == "cpu"
    for name in ("rows", "steps", "reverse"):
        assert getattr(moved.packing, name).device.type == "meta"
    assert moved.packing.batch_sizes == batch.packing.batch_sizes and moved.sentences == batch.sentences
    assert to_device({"a": [torch.ones(1)], "b": None, "c": 3}, torch.device("meta"))["a"][0].is_meta


def tensors_in(value) -> list[torch.Tensor]:
    if torch.is_tensor(value):
        return [value]
    if dataclasses.is_dataclass(value):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


@pytest.mark.parametrize("task", ["digits", "pos"])
def test_every_tensor_the_model_reads_and_every_batch_of_ids_went_through_task_to_device(make_cfg, tmp_path,
                                                                                         monkeypatch, task):
    """On the CPU a tensor left on the CPU trains as well as a moved one; here the mover hands out copies, and the
    model and meAct must only ever see those: in training and in evaluation (dev, test, predictions)."""
    from meprop_cli.methods.meact import MeAct
    from meprop_cli.tasks import base

    handed_out: dict[int, torch.Tensor] = {}
    original = base.to_device

    def copying(value, device):
        if torch.is_tensor(value):
            copy = value.clone()
            handed_out[id(copy)] = copy  # (kept alive, so that no other tensor reuses its id)
            return copy
        return original(value, device)  # whose parts come back here

    monkeypatch.setattr(base, "to_device", copying)
    read, unmoved = [], []

    def check(module, args):
        read.append(module.training)
        unmoved.extend(t for t in tensors_in(args) if id(t) not in handed_out)

    top = {"digits": "MLP", "pos": "Tagger"}[task]
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: check(module, args) if type(module).__name__ == top else None)
    on_batch_start = MeAct.on_batch_start
    monkeypatch.setattr(MeAct, "on_batch_start", lambda self, ids: (
        unmoved.extend([ids] if id(ids) not in handed_out else []), on_batch_start(self, ids)))
    args = (["method=meact", "method.start_epoch=2", *QUICK] if task == "digits"
            else [*TINY, f"data_root={write_tiny_ewt(tmp_path / 'data')}", "method=meprop", "topk=3"])
    try:
        record = train(make_cfg([*args, "trainer.max_epochs=2"]), tmp_path / "run")
    finally:
        hook.remove()
    assert record["status"] == "completed"
    assert True in read and False in read  # training and evaluation forwards were both checked
    assert unmoved == []


# -- the trainer on the torch paths: the same run as on the kernels -----------------------------------

METHODS = {
    "meprop_decay": ["method=meprop", "topk=10", "decay=0.6"],
    "meprop_unified": ["method=meprop_unified", "topk=10"],
    # tanh: a ReLU gradient has ties among its zeros, which C and torch.topk break differently, and lazy Adam moves
    # every row a kept entry names, zero or not
    "sparse_update": ["method=meprop", "topk=10", "optim.sparse_update=true", "task.activation=tanh"],
    "mesimp": ["method=mesimp", "topk=10", "method.prune_checks_per_epoch=2"],
    "meact": ["method=meact", "method.start_epoch=2", "trainer.max_steps_per_epoch=120"],
    "average_diagnostics": ["method=meprop", "topk=10", "trainer.average_decay=0.9", "trainer.diagnostics=true"],
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_run_on_the_torch_paths_trains_as_on_the_kernels(make_cfg, tmp_path, monkeypatch, name):
    if native.library() is None:
        pytest.skip("no C compiler: only the torch path exists here")
    args = [*QUICK, "trainer.max_epochs=2", *METHODS[name]]
    kernels = train(make_cfg(args), tmp_path / "c")
    monkeypatch.setenv("MEPROP_KERNELS", "torch")
    torch_paths = train(make_cfg(args), tmp_path / "torch")
    assert (kernels[results.KERNELS], torch_paths[results.KERNELS]) == ("c", "torch")
    assert torch_paths["dev"] == kernels["dev"] and torch_paths["test"] == kernels["test"]
    assert torch_paths.get(results.HIDDEN_FINAL) == kernels.get(results.HIDDEN_FINAL)
    want = results.read_checkpoint(tmp_path / "c" / results.LAST_CHECKPOINT)
    got = results.read_checkpoint(tmp_path / "torch" / results.LAST_CHECKPOINT)
    for key, weight in want["model"].items():
        torch.testing.assert_close(got["model"][key], weight, rtol=1e-4, atol=1e-5, msg=key)


# -- checkpoints across devices -----------------------------------------------------------------------


@contextmanager
def storages_tagged_cuda():
    """Inside, torch.save marks every tensor of the file as on cuda:0, as a checkpoint saved on a GPU is."""
    def tag(storage):
        return "cuda:0" if storage.device.type == "cpu" else None

    torch.serialization.register_package(1, tag, lambda storage, location: None)
    try:
        yield
    finally:
        torch.serialization._package_registry[:] = [e for e in torch.serialization._package_registry
                                                    if e[1] is not tag]


def as_saved_on_cuda(path: Path) -> None:
    """Rewrite a checkpoint as a run on a GPU would have saved it: its tensors marked cuda:0, the CUDA RNG state."""
    payload = torch.load(path, weights_only=False)
    if "progress" in payload:  # last.pt
        payload.update(device="cuda", cuda_rng=torch.get_rng_state())
    buffer = io.BytesIO()
    with storages_tagged_cuda():
        torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU here would load the file without map_location")
def test_checkpoints_saved_on_a_gpu_load_and_resume_on_the_cpu(make_cfg, tmp_path, caplog):
    args = [*QUICK, "method=mesimp", "topk=10", "decay=0.6", "method.prune_checks_per_epoch=2",
            "trainer.average_decay=0.9", "task.dropout=0.2", "trainer.device=cpu"]
    full = train(make_cfg([*args, "trainer.max_epochs=2"]), tmp_path / "full")
    train(make_cfg([*args, "trainer.max_epochs=1"]), tmp_path / "cut")
    for name in (results.LAST_CHECKPOINT, results.BEST_CHECKPOINT):
        as_saved_on_cuda(tmp_path / "cut" / name)
    with pytest.raises(RuntimeError, match="Attempting to deserialize object on a CUDA device"):
        torch.load(tmp_path / "cut" / results.LAST_CHECKPOINT, weights_only=False)  # the file is a GPU's

    best = results.read_checkpoint(tmp_path / "cut" / results.BEST_CHECKPOINT)
    assert all(t.device.type == "cpu" for t in best["model"].values())
    resumed = train(make_cfg([*args, "trainer.max_epochs=2", "trainer.resume=true"]), tmp_path / "cut")
    assert "resuming on cpu a run saved on cuda" in caplog.text
    # weights, Adam's moments, run_grad, meSimp's counts and sizes, the average and the CPU RNG all came back
    # (this file was in truth computed on the CPU, so the continuation is exact)
    assert resumed["status"] == "completed"
    assert (resumed["dev"], resumed["test"], resumed[results.HIDDEN_FINAL]) == \
        (full["dev"], full["test"], full[results.HIDDEN_FINAL])
    for key, weight in results.read_checkpoint(tmp_path / "full" / results.LAST_CHECKPOINT)["model"].items():
        assert torch.equal(results.read_checkpoint(tmp_path / "cut" / results.LAST_CHECKPOINT)["model"][key],
                           weight), key


def test_a_run_saved_on_one_device_may_resume_on_another():
    assert "trainer.device" in trainer.RESUME_MAY_CHANGE


# -- timing ---------------------------------------------------------------------------------------------


def test_clocks_wait_for_a_cuda_device_and_never_on_the_cpu(make_cfg, tmp_path, monkeypatch):
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    timing.synchronize(torch.device("cpu"))
    assert waited == []
    timing.synchronize(torch.device("cuda", 0))
    assert waited == [torch.device("cuda", 0)]
    waited.clear()
    record = train(make_cfg(["method=meprop", "topk=10", "trainer.device=cpu", "trainer.max_epochs=1", *QUICK]),
                   tmp_path)
    assert waited == [] and record["timing"]["linear_backward_s"] > 0


# -- on a GPU (skipped where torch sees none) -----------------------------------------------------------

CUDA_METHODS = {**METHODS, "dropout_random": ["method=random", "topk=10", "task.dropout=0.3"]}


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(CUDA_METHODS))
def test_a_tiny_run_trains_on_the_gpu_as_on_the_cpu(make_cfg, tmp_path, name):
    args = [*QUICK, "trainer.max_epochs=2", *CUDA_METHODS[name]]
    record = train(make_cfg([*args, "trainer.device=cuda"]), tmp_path / "cuda")
    assert record["status"] == "completed"
    assert (record[results.DEVICE], record[results.KERNELS]) == ("cuda", "torch")
    assert record[results.GPU] == torch.cuda.get_device_name()
    assert 0 < record["timing"]["linear_backward_s"] <= record["timing"]["backward_s"]
    assert results.read_checkpoint(tmp_path / "cuda" / results.LAST_CHECKPOINT)["cuda_rng"] is not None
    if "task.dropout=0.3" not in args:  # (the GPU draws dropout from its own generator)
        on_cpu = train(make_cfg([*args, "trainer.device=cpu"]), tmp_path / "cpu")
        assert abs(record["dev"]["accuracy"] - on_cpu["dev"]["accuracy"]) <= 0.05
        assert record.get(results.HIDDEN_FINAL) == on_cpu.get(results.HIDDEN_FINAL)


@pytest.mark.cuda
def test_the_gpu_step_gives_the_cpu_kernels_gradients(make_cfg, tmp_path):
    from meprop_cli.train import Run

    grads = {}
    for device in ("cpu", "cuda"):
        run = Run(make_cfg(["method=meprop", "topk=10", f"trainer.device={device}", *QUICK]), tmp_path / device)
        run.setup()
        batch = run.task.to_device(next(run.task.train_batches(torch.Generator().manual_seed(0))))
        run.task.loss(run.model, batch)[0].backward()
        grads[device] = {name: p.grad.cpu() for name, p in run.model.named_parameters()}
    for name, grad in grads["cpu"].items():
        torch.testing.assert_close(grads["cuda"][name], grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.cuda
def test_a_gpu_run_resumes_on_the_gpu_with_its_random_state_and_continues_on_the_cpu(make_cfg, tmp_path):
    args = [*QUICK, "method=random", "topk=10", "task.dropout=0.3"]  # both draw from the GPU's generator
    on_gpu = [*args, "trainer.device=cuda"]
    train(make_cfg([*on_gpu, "trainer.max_epochs=2"]), tmp_path / "full")
    train(make_cfg([*on_gpu, "trainer.max_epochs=1"]), tmp_path / "cut")
    resumed = train(make_cfg([*on_gpu, "trainer.max_epochs=2", "trainer.resume=true"]), tmp_path / "cut")
    assert resumed["status"] == "completed"
    # close, not bit-identical: CUDA's atomic additions (index_add_) sum in no fixed order; another dropout draw
    # would be far off
    want = results.read_checkpoint(tmp_path / "full" / results.LAST_CHECKPOINT)["model"]
    got = results.read_checkpoint(tmp_path / "cut" / results.LAST_CHECKPOINT)["model"]
    for key, weight in want.items():
        torch.testing.assert_close(got[key], weight, rtol=1e-4, atol=1e-4, msg=key)

    train(make_cfg([*on_gpu, "trainer.max_epochs=1"]), tmp_path / "moved")
    moved = train(make_cfg([*args, "trainer.device=cpu", "trainer.max_epochs=2", "trainer.resume=true"]),
                  tmp_path / "moved")
    assert moved["status"] == "completed" and moved[results.DEVICE] == "cpu" and moved["epochs_run"] == 2


@pytest.mark.cuda
@pytest.mark.usefixtures("tiny_mnist")
@pytest.mark.parametrize("task", ["pos", "parse", "mnist_cnn"])
def test_every_task_trains_and_is_scored_on_the_gpu(make_cfg, tmp_path, task):
    from test_mnist_cnn import FAST as CNN

    if task == "pos":
        args = [*TINY, f"data_root={write_tiny_ewt(tmp_path / 'data')}", "method=mesimp", "topk=3"]
    elif task == "parse":
        root = tmp_path / "data"
        for split in ("train", "dev", "test"):
            write_treebank(root / "ud-english-ewt" / f"en_ewt-ud-{split}.conllu", TREES * 3)
        args = tiny_overrides(root, "method=meact", "method.start_epoch=2")
    else:
        args = [*CNN, "method=meprop_cnn", "topk_ratio=0.05", "decay=0.6"]
    record = train(make_cfg([*args, "trainer.max_epochs=2", "trainer.device=cuda"]), tmp_path / "run")
    assert record["status"] == "completed" and record[results.DEVICE] == "cuda"
    assert record["test"] and all(0 <= v <= 1 for v in record["test"].values())
