"""Sweeps under Hydra's launchers: basic (the jobs one after another, in the process that runs the sweep), joblib
(parallel jobs in worker processes on this machine, extra `parallel`) and submitit (SLURM, extra `slurm`;
`submitit_local` runs the same machinery as local subprocesses).

A job may run in another process, or on another machine, than the sweep; what the sweep learns from its jobs
therefore goes through files in the sweep folder (SweepState): which jobs failed, and whether a signal stopped
the sweep (jobs not started then do not start). Threads: jobs × threads stay within the cores (job_threads).
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from meprop_cli import results

STATE_DIR = ".meprop-sweep"  # in the sweep folder, for the sweep's life: failed/, running/, stopped
SWEEP_PROCESS = "MEPROP_SWEEP_PROCESS"  # env: host:pid of the process running the sweep (its jobs inherit it)


def cores() -> int:
    """The CPUs this process may use (affinity and container limits counted, as joblib counts them)."""
    from joblib import cpu_count  # a dependency of scikit-learn

    return cpu_count()


def parallel_jobs(n_jobs: int | None, available: int) -> int:
    """How many jobs joblib runs at once for hydra.launcher.n_jobs: -1 is one per core, -2 all cores but one."""
    if n_jobs is None:
        return 1
    return max(1, available + 1 + n_jobs if n_jobs < 0 else n_jobs)


def job_threads(threads: int, launcher: Mapping[str, Any], available: int,
                task_threads: int = 0) -> tuple[int, list[str]]:
    """The torch threads a job uses for trainer.threads (0: choose), and the warnings to keep with it.

    0 chooses the job's share of the cores, at most task_threads (the task's `auto_threads`; 0: no limit). A
    step of batch 10 is slower on two threads than on one (docs/kernels.md: 2.2 -> 4.1 ms), and a thread that
    spins for a core another process holds made a 12 s run take 5 min. The share: a single run or the basic
    launcher (one job after another) has all the cores; joblib runs J jobs at once, each gets max(1, cores // J);
    submitit gives each job its hydra.launcher.cpus_per_task, or 1 when that is not set (submitit_local then
    runs the jobs at once, and SLURM's default is one core). A trainer.threads given is kept, with a warning
    when the jobs at once would wait for each other's cores."""
    if "n_jobs" in launcher:  # joblib
        n_jobs = launcher["n_jobs"]
        jobs = parallel_jobs(n_jobs, available)
        if jobs > available:
            return threads or 1, [(f"hydra.launcher.n_jobs={n_jobs} runs {jobs} jobs at once on {available} cores: "
                                   f"the jobs wait for each other's cores; use n_jobs at most {available}")]
        share = available // jobs
        if threads and jobs * threads > available:
            return threads, [(f"trainer.threads={threads} in {jobs} jobs at once (hydra.launcher.n_jobs={n_jobs}) is "
                              f"{jobs * threads} threads on {available} cores: the jobs wait for each other's cores; "
                              f"trainer.threads=0 gives each job {capped(share, task_threads)}")]
    elif "cpus_per_task" in launcher:  # submitit
        share = launcher["cpus_per_task"] or 1
        if threads > share:
            return threads, [(f"trainer.threads={threads} is more than the job's cores (hydra.launcher.cpus_per_task="
                              f"{launcher['cpus_per_task']}): its threads wait for each other's cores; "
                              f"trainer.threads=0 gives it {capped(share, task_threads)}")]
    else:
        share = available
    return threads or capped(share, task_threads), []


def capped(share: int, task_threads: int) -> int:
    """A job's share of the cores, at most the task's auto_threads (0: the whole share)."""
    return min(share, task_threads) if task_threads else share


@dataclass(frozen=True)
class SweepState:
    """The files through which a sweep's jobs, wherever they run, tell the sweep what it must know."""

    folder: Path

    @classmethod
    def of(cls, sweep_dir: str | os.PathLike) -> SweepState:
        return cls(Path(sweep_dir) / STATE_DIR)

    def reset(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def record_failure(self, job: int, run_dir: Path) -> None:
        results.write_text_atomic(self.folder / "failed" / str(job), str(run_dir))

    def failures(self) -> list[str]:
        """The run folders of the failed jobs, in job order."""
        found = sorted((self.folder / "failed").glob("*"), key=lambda path: int(path.name))
        return [path.read_text(encoding="utf-8") for path in found]

    def stop(self, signal_name: str) -> None:
        """Jobs stopped at once may each say so: the first is kept (a hard link is made whole, or not at all)."""
        mine = self.folder / f"stopped.{process_id()}"
        results.write_text_atomic(mine, signal_name)
        with suppress(FileExistsError):
            os.link(mine, self.folder / "stopped")
        mine.unlink()

    def stopped(self) -> str | None:
        """The signal that stopped the sweep, if one did."""
        path = self.folder / "stopped"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def running(self) -> list[int]:
        """The worker processes running a job now (a parallel sweep's)."""
        return [int(path.name) for path in (self.folder / "running").glob("*")]

    @contextmanager
    def job_running(self) -> Iterator[None]:
        path = self.folder / "running" / str(os.getpid())
        results.write_text_atomic(path, "")
        try:
            yield
        finally:
            with suppress(OSError):
                path.unlink()


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def runs_the_sweep() -> bool:
    """Whether this process runs the sweep (a basic launcher's job), not a worker or a cluster job of it."""
    return os.environ.get(SWEEP_PROCESS) == process_id()


class SweepCallback(Callback):
    """Hydra calls on_multirun_start in the process that runs the sweep, before any job starts (conf/config.yaml:
    hydra.callbacks). It keeps no state of its own: Hydra sends it along to the jobs."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        global current
        current = SweepState.of(config.hydra.sweep.dir)
        current.reset()
        os.environ[SWEEP_PROCESS] = process_id()
        if "n_jobs" in config.hydra.launcher:  # joblib: the jobs run in worker processes of this one
            # Ctrl-C reaches every job (one process group) and each ends as a single run does; this process
            # waits for them. Workers start with it ignored too, so one that is idle is not killed by it.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, stop_parallel_sweep)


current: SweepState | None = None  # the sweep this process runs


def stop_parallel_sweep(signum: int, frame: Any) -> None:
    """SIGTERM to a parallel sweep: the jobs not started do not start, and the running ones end as a single
    run does (test scored, result written), each told by SIGTERM."""
    assert current is not None
    current.stop(signal.Signals(signum).name)  # first: a job that registers after the listing below sees it
    workers = {child.pid for child in multiprocessing.active_children()}
    for pid in set(current.running()) & workers:  # only those in a job: an idle one has no handler for it
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


def note_signal(signum: int, frame: Any) -> None:
    """A parallel job's SIGTERM outside the run: the run ends at its first step (train.PendingSignal)."""
    from meprop_cli.train import PendingSignal

    PendingSignal.signum = signum


@contextmanager
def worker_job(state: SweepState) -> Iterator[None]:
    """A joblib job in a worker: signals are taken (never the worker's death, which would make joblib kill the
    other jobs), and the sweep knows it runs, to pass it a SIGTERM."""
    signal.signal(signal.SIGTERM, note_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with state.job_running():
        yield


def drop_unstarted(run_dir: Path, job_name: str) -> None:
    """Remove the folder Hydra made for a job that did not start (its .hydra/ and log), unless it holds more."""
    names = {path.name for path in run_dir.iterdir()} if run_dir.is_dir() else set()
    if names <= {".hydra", f"{job_name}.log"}:
        shutil.rmtree(run_dir, ignore_errors=True)


def finish_sweep() -> tuple[list[str], str | None]:
    """In the process that ran the sweep, once it returned: the failed jobs' folders, and the signal that
    stopped it (or None). The sweep's state files are removed."""
    if current is None:
        return [], None
    failed, stopped = current.failures(), current.stopped()
    current.reset()
    return failed, stopped
