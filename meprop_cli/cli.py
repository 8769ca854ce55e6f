"""meprop train | data (| table | plot): the command line. Thin: each command calls a plain function."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

USAGE = """usage: meprop COMMAND [ARGS]

commands:
  train   train a task with a method (Hydra overrides; `meprop train --help`)
  data    fetch or check the datasets (`meprop data --help`)
  table   the papers' tables from run folders (`meprop table --help`)
  plot    the papers' figures (PNG) from run folders (`meprop plot --help`)
  tag     tag a CoNLL-U file with a trained POS tagger (`meprop tag --help`)
"""


def config_dir() -> Path:
    """conf/ shipped inside the package (regular install), else conf/ beside it (source or editable)."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


INTERRUPTED_EXIT = {"SIGINT": 130, "SIGUSR2": 140, "SIGTERM": 143}  # 128 + the signal's number, as a shell says


def test_score(record: dict) -> float | None:
    """The first test metric of a result record: what a sweep job returns to Hydra."""
    metric = next(iter(record.get("test") or {}), None)
    return record["test"][metric] if metric else None


def hydra_error(e: Exception) -> str:
    """One line from a Hydra composition error, whose text spans lines: what failed, why, and the choices."""
    lines = str(e).strip().splitlines()
    why = str(e.__cause__).strip().splitlines()[0] if e.__cause__ is not None else ""
    choices, listing = [], False
    for line in lines[1:]:
        if line.startswith("Available options"):
            listing = True
        elif listing and line.startswith("\t"):
            choices.append(line.strip())
        elif listing and line.strip():
            listing = False
    message = lines[0].rstrip(".:") + (f": {why}" if why else "")
    if not why and not choices and len(lines) > 1:  # e.g. "Key 'x' not in 'TrainerConfig'" on its own line
        message += ": " + "; ".join(line.strip() for line in lines[1:3] if line.strip() and "full_key" not in line)
    if "hydra/launcher/" in lines[0]:  # the launchers are Hydra plugins, installed with the extras
        message += (" (hydra/launcher=joblib needs pip install 'meprop-cli[parallel]'; slurm and submitit_local "
                    "need 'meprop-cli[slurm]')")
    return message + (f"; use one of {', '.join(choices)}" if choices else "")


def fail(message: str, code: int = 2) -> None:
    print(f"meprop: error: {message}", file=sys.stderr)
    sys.exit(code)


def train_job(cfg, hydra_cfg) -> float | None:
    """One run of `meprop train`, or one job of a sweep, wherever its launcher runs it: the Hydra app."""
    import signal

    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from meprop_cli import launch, results
    from meprop_cli.errors import UserError
    from meprop_cli.train import config_changes, holds_run, train

    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = launch.SweepState.of(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None
    parallel = "n_jobs" in hydra_cfg.launcher  # joblib: jobs at once, in worker processes
    if sweep is not None and sweep.stopped():
        print(f"not started (a {sweep.stopped()} stopped the sweep): {run_dir}")
        launch.drop_unstarted(run_dir, hydra_cfg.job.name)
        return None
    if sweep is not None and not cfg.trainer.resume and holds_run(run_dir):
        # a sweep run again into its folder, or a job requeued by its scheduler: a job that completed with these
        # settings is kept; one that was interrupted, or is asked for more epochs, continues from its checkpoint;
        # anything else is refused by train() below
        previous = results.load_run(run_dir)
        same = previous.config and not config_changes(previous.config, OmegaConf.to_container(cfg, resolve=True))
        if same and previous.status == "completed" and previous.result.get("epochs_run", 0) >= cfg.trainer.max_epochs:
            print(f"skipped (completed before): {run_dir}")
            return test_score(previous.result)
        if same and (run_dir / results.LAST_CHECKPOINT).is_file():
            cfg.trainer.resume = True
    cfg.trainer.threads, warnings = launch.job_threads(cfg.trainer.threads, hydra_cfg.launcher, launch.cores(),
                                                       cfg.task.auto_threads)
    try:
        record = train(cfg, run_dir, warnings)
    except UserError as e:
        if sweep is None:
            fail(str(e))
        print(f"meprop: error in {run_dir}: {e}", file=sys.stderr)
        sweep.record_failure(hydra_cfg.job.num, run_dir)
        return None
    print(f"{record['status']}: {record['task']} {record['method']}, {results.best_epoch_text(record)} -> {run_dir}")
    signal_name = record.get(results.INTERRUPTED_BY)
    if not signal_name:
        return test_score(record)
    # the result is written; the shell (and a scheduler) must still see the interruption
    print(f"meprop: {record['error']}", file=sys.stderr)
    if signal_name == "SIGUSR2" and (run_dir / results.LAST_CHECKPOINT).is_file():
        try:  # to the handler the run took the signal from: submitit's requeues the job, which then resumes
            signal.raise_signal(signal.SIGUSR2)
        except RuntimeError as e:  # submitit's UncompletedJobError: not requeued (timed out too many times)
            print(f"meprop: {run_dir} is not requeued: {e}", file=sys.stderr)
    if sweep is None or launch.runs_the_sweep():
        sys.exit(INTERRUPTED_EXIT[signal_name])  # in a sweep this also stops the jobs still to run
    if parallel:
        sweep.stop(signal_name)  # the jobs not started do not start, as in a sweep run one job at a time
    else:  # a cluster's job (cancelled, say): the others run on; the sweep names it
        sweep.record_failure(hydra_cfg.job.num, run_dir)
    return None


def train_command(argv: list[str]) -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import CompactHydraException
    from omegaconf import DictConfig
    from omegaconf.errors import OmegaConfBaseException

    from meprop_cli import launch
    from meprop_cli.config import register_configs
    from meprop_cli.errors import UserError

    register_configs()

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
    def app(cfg: DictConfig) -> float | None:
        hydra_cfg = HydraConfig.get()
        if "n_jobs" in hydra_cfg.launcher and not launch.runs_the_sweep():  # in a joblib worker
            with launch.worker_job(launch.SweepState.of(hydra_cfg.sweep.dir)):
                return train_job(cfg, hydra_cfg)
        return train_job(cfg, hydra_cfg)

    sys.argv = ["meprop train", *argv]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing: the errors below become one sentence
    try:
        app()
    except (CompactHydraException, OmegaConfBaseException) as e:  # a key, type or choice Hydra could not compose
        fail(hydra_error(e))
    except UserError as e:  # raised by a job, outside the run (the sweep's files in its folder could not be written)
        fail(str(e))
    except ValueError as e:  # Hydra's own check of its flags
        if not str(e).startswith("Only one of --run, --multirun"):
            raise
        fail(f"{e}: --cfg, --info and --shell-completion show one run's setup, so they do not go with -m; drop -m "
             "to see a job's config (its overrides, one value each)")
    except OSError as e:  # Hydra creates the run folder (and its .hydra/ and log) before training starts
        fail(f"cannot write {e.filename or 'the run folder'}: {e.strerror or e}; choose a writable hydra.run.dir "
             "(hydra.sweep.dir for a sweep)")
    failed, stopped = launch.finish_sweep()
    if failed:
        message = f"{len(failed)} job(s) of the sweep failed; their result.json says why: {', '.join(failed)}"
        if not stopped:
            fail(message, 1)
        print(f"meprop: error: {message}", file=sys.stderr)
    if stopped:  # a parallel sweep: each job stopped prints why; the shell sees the signal
        sys.exit(INTERRUPTED_EXIT[stopped])


def data_command(argv: list[str]) -> None:
    from meprop_cli.data import fetch
    from meprop_cli.errors import DataError

    parser = argparse.ArgumentParser(prog="meprop data", description="Fetch or check the datasets.")
    parser.add_argument("action", choices=["fetch", "check"])
    parser.add_argument("dataset", nargs="?", default="all", choices=[*fetch.DATASETS, "all"])
    parser.add_argument("--root", default=os.environ.get("MEPROP_DATA", "data"),
                        help="data root (default: $MEPROP_DATA or ./data)")
    args = parser.parse_args(argv)
    root = Path(args.root).expanduser()
    if args.action == "check":
        lines = fetch.check(root)
        print("\n".join(lines))
        if any(not line.startswith("ok") for line in lines):
            sys.exit(1)
        return
    wanted = fetch.DATASETS if args.dataset == "all" else (args.dataset,)
    try:
        for name in wanted:
            (fetch.fetch_mnist if name == "mnist" else fetch.fetch_ewt)(root)
    except DataError as e:
        fail(str(e))
    print(f"data ready under {root.resolve()} (use data_root={root.resolve()} or MEPROP_DATA)")


def table_command(argv: list[str]) -> None:
    from meprop_cli import results, table
    from meprop_cli.errors import UserError

    parser = argparse.ArgumentParser(
        prog="meprop table", description="Build a paper table from run folders (single runs and sweeps, "
        "nested); runs that failed or did not finish are listed under it with their reason.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="run folders, sweep folders, or (for --kind synthetic) benchmark .jsonl/.csv files")
    parser.add_argument("--kind", choices=table.KINDS, default=None,
                        help="which table (default: inferred: mesimp or cnn runs, benchmark files, else main)")
    parser.add_argument("--format", choices=table.FORMATS, default="markdown", help="default: markdown")
    parser.add_argument("--out", type=Path, default=None, help="write the table to this file instead of stdout")
    args = parser.parse_args(argv)
    try:
        clash = next((path for path in args.paths if args.out and results.same_file(path, args.out)), None)
        if clash:  # a benchmark file given with --out: the table would replace the records it is built from
            raise UserError(f"--out {args.out} is the input file {clash}; give another path for the table")
        built, kind = table.make_table(args.paths, args.kind)
        text = table.render(built, args.format)
        if args.out:
            results.write_text_atomic(args.out, text)
    except UserError as e:
        fail(str(e))
    if args.format == "csv":  # keep the CSV machine-readable: the notes go to stderr
        for note in built.notes:
            print(f"meprop table: {note}", file=sys.stderr)
    if args.out:
        print(f"{kind} table, {len(built.rows)} row(s) -> {args.out}")
    else:
        print(text, end="")
    if not built.rows:
        fail(f"no completed run fits the '{kind}' table (see the notes)", 1)


def plot_command(argv: list[str]) -> None:
    from meprop_cli import plot
    from meprop_cli.errors import UserError

    parser = argparse.ArgumentParser(prog="meprop plot", description="Draw a paper figure (PNG) from run folders.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="run folders or sweep folders")
    parser.add_argument("--kind", choices=plot.KINDS, required=True,
                        help="ratio | random | small (Fig. 4), curves (dev over epochs), mesimp, meact, diagnostics")
    parser.add_argument("--out", type=Path, default=None, help="the figure file, in the format of its suffix: "
                        f"{', '.join('.' + f for f in plot.FIGURE_FORMATS)} (default: KIND.png)")
    args = parser.parse_args(argv)
    out = args.out or Path(f"{args.kind}.png")
    try:
        left_out = plot.make_plot(args.paths, args.kind, out)
    except UserError as e:
        fail(str(e))
    for run in left_out:
        print(f"meprop plot: left out {run.path}: {run.status}: {run.reason}", file=sys.stderr)
    print(f"{args.kind} plot -> {out}")




def tag_command(argv: list[str]) -> None:
    from meprop_cli import results
    from meprop_cli.data.conllu import read_conllu, write_conllu
    from meprop_cli.errors import DataError, UserError
    from meprop_cli.tasks.pos import load_tagger, tag_sentences

    parser = argparse.ArgumentParser(prog="meprop tag", description="Tag a CoNLL-U file with a trained POS tagger.")
    parser.add_argument("checkpoint", help="best.pt of a task=pos run")
    parser.add_argument("input", help="CoNLL-U file to tag (its tag column is ignored)")
    parser.add_argument("output", help="where to write the CoNLL-U file with predicted tags")
    args = parser.parse_args(argv)
    try:
        for role, given in (("input", args.input), ("checkpoint", args.checkpoint)):
            if results.same_file(given, args.output):  # also through another spelling, a symlink or a hard link
                raise UserError(f"OUTPUT {args.output} is the {role} file {given}: tagging would overwrite it; give "
                                "another output path")
        task, model = load_tagger(args.checkpoint)
        sentences = read_conllu(args.input)
        if not sentences:
            raise DataError(f"{args.input} holds no sentence; give a CoNLL-U file with sentences to tag")
        write_conllu(args.output, tag_sentences(task, model, sentences))
    except UserError as e:
        fail(str(e))
    print(f"tagged {args.input} -> {args.output}")


COMMANDS = {"train": train_command, "data": data_command, "tag": tag_command,
            "table": table_command, "plot": plot_command}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; use one of {', '.join(COMMANDS)} (`meprop --help`)")
    COMMANDS[command](rest)
