"""Shared fixtures: compose a run config as the CLI would, run the CLI in a subprocess, find real data."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from meprop_cli.cli import config_dir
from meprop_cli.config import register_configs
from meprop_cli.nn.lstm import GATES, LSTMDirection
from meprop_cli.ops import native

REPO = Path(__file__).resolve().parent.parent

# One thread: the tiny models of the tests gain nothing from more, and on a shared 2-core machine
# torch's spinning worker threads make every small product slow.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run where torch sees a GPU, and are skipped elsewhere (CI tests the CPU plumbing)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU: torch.cuda.is_available() is False")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def real_data_root() -> Path | None:
    """The real datasets: $MEPROP_DATA, else ../shared/data beside the repository; None if absent."""
    for candidate in (os.environ.get("MEPROP_DATA"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def real_data() -> Path:
    root = real_data_root()
    if root is None:
        pytest.skip("real data not found (set MEPROP_DATA)")
    return root


@pytest.fixture
def make_cfg():
    """make_cfg(["task=digits", ...]) -> the composed run config, exactly as `meprop train` builds it."""
    register_configs()

    def _compose(overrides: list[str] | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=overrides or [])

    yield _compose
    GlobalHydra.instance().clear()


def run_meprop(args: list[str], cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `meprop ARGS` as a user would (python -m meprop_cli, from another working directory)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "meprop_cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(params=["c", "torch"])
def backend(request, monkeypatch):
    """Run a test once on the compiled kernels (kernels.c) and once on their pure-torch twins."""
    if request.param == "torch":
        monkeypatch.setenv("MEPROP_KERNELS", "torch")
    elif native.library() is None:
        pytest.skip("no C compiler: only the torch path exists here")
    assert native.backend() == request.param
    return request.param


def load_script(name: str):
    """scripts/NAME.py imported as a module, so a test can call its main() in this process."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_from_torch(direction: LSTMDirection, lstm: torch.nn.LSTM, suffix: str) -> None:
    """Load torch.nn.LSTM's fused (4h, ·) weights gate by gate; its two biases add up to ours."""
    w_ih, w_hh = getattr(lstm, f"weight_ih_l0{suffix}"), getattr(lstm, f"weight_hh_l0{suffix}")
    b = getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}")
    with torch.no_grad():
        for j in range(len(GATES)):  # torch.nn.LSTM's gate order
            direction.weight_x[j].copy_(w_ih.chunk(4)[j])
            direction.weight_h[j].copy_(w_hh.chunk(4)[j])
            direction.bias[j].copy_(b.chunk(4)[j])
