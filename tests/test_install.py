"""A regular (non-editable) install finds its Hydra configs inside the package, from any directory."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_regular_install_runs_from_another_directory(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", "runs", ".git", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(source)], check=True, capture_output=True, text=True)
    assert (target / "meprop_cli" / "conf" / "config.yaml").is_file()
    assert (target / "meprop_cli" / "conf" / "task" / "mnist_mlp.yaml").is_file()
    assert (target / "meprop_cli" / "conf" / "hydra" / "launcher" / "slurm.yaml").is_file()
    assert (target / "meprop_cli" / "ops" / "kernels.c").is_file()
    shutil.rmtree(source)  # the installed copy must not lean on the source tree

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run([sys.executable, "-c", "import meprop_cli.cli as c; print(c.__file__); print(c.config_dir())"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    module_file, conf = probe.stdout.split()
    assert module_file.startswith(str(target)) and conf == str(target / "meprop_cli" / "conf")
    run = subprocess.run([sys.executable, "-m", "meprop_cli", "train", "trainer.max_epochs=1",
                          "trainer.max_steps_per_epoch=3", "hydra.run.dir=out"],
                         cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (work / "out" / "result.json").is_file()
