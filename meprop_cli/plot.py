"""`meprop plot`: the papers' figures as PNG files (or another FIGURE_FORMATS, by the file's suffix), from run
folders only (headless, matplotlib Agg).

Kinds:
    ratio    accuracy vs backprop ratio k/h for meProp, the baseline as a dashed line (meProp Fig. 4 left)
    random   top-k vs random-k meProp at each ratio k/h (Fig. 4 middle)
    small    meProp at ratio k/h vs a small network with h' = k, at ratio h'/h (Fig. 4 right)
    curves   dev score over epochs, one line per setting (mean over seeds)
    mesimp   hidden sizes over training, one line per group of hidden neurons per run that changed size: the
             sizes after each prune check (metrics.jsonl results.PRUNE_CHECKS, each check's step / updates
             per epoch), else at each evaluation (results.SIZES); the tested model's step is marked
    meact    dev score, mean |update| per parameter (results.UPDATE_SIZE, trainer.track_updates) and the active
             fraction of each hidden layer (results.ACTIVE_FRACTION) over epochs, meAct against the baseline;
             a dotted line marks the first epoch that skipped inactive neurons (results.MEACT_ACTING)
One panel per task and optimizer. Points are the mean over seeds, with the std as error bars.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or the training machines
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from meprop_cli import results  # noqa: E402
from meprop_cli.errors import UserError  # noqa: E402
from meprop_cli.table.aggregate import sort_key  # noqa: E402
from meprop_cli.table.frame import BASELINE, is_method_key, number, percent, run_frame  # noqa: E402
from meprop_cli.table.kinds import sizes  # noqa: E402

KINDS = ("ratio", "random", "small", "curves", "mesimp", "meact", "diagnostics")
FIGURE_FORMATS = ("png", "pdf", "svg", "eps", "jpg", "jpeg")  # what matplotlib writes without a LaTeX install
RATIO_METHODS = {"ratio": ("meprop", "meprop_unified"), "random": ("meprop", "random"), "small": ("meprop", "small")}


def panels(count: int) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, count, figsize=(5.5 * count, 4.2), squeeze=False)
    return fig, list(axes[0])


def backprop_ratio(row: pd.Series) -> float | None:
    """k/h in %: the share of each hidden gradient kept (for method=small: its size h' over the full h)."""
    hidden, configured = row["hidden"], row["task_hidden"]
    if not hidden or not configured:
        return None
    if row["method"] == "small":
        return 100.0 * hidden[0] / configured[0]
    k = number(row["k"])
    return None if k is None else 100.0 * k / hidden[0]


def mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.dropna().astype(float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def varying(rows: pd.DataFrame) -> list[str]:
    """The context settings (not the method's) that differ between these runs: they go into the labels."""
    settings = list(rows["_setting"])
    keys = sorted({key for s in settings for key in s if not is_method_key(key) and key not in ("hidden",)})
    return [key for key in keys if len({repr(s.get(key)) for s in settings}) > 1]


def context_label(row: pd.Series, keys: list[str]) -> str:
    return "".join(f" {key.rsplit('.', 1)[-1]}={row['_setting'].get(key)}" for key in keys)


def plot_ratio(frame: pd.DataFrame, kind: str, out: Path) -> None:
    methods = RATIO_METHODS[kind]
    frame = frame.copy()
    frame["ratio"] = frame.apply(backprop_ratio, axis=1)
    shown = frame[frame["method"].isin(methods) & frame["ratio"].notna() & frame["test"].notna()]
    absent = [m for m in methods[1:] if m not in set(shown["method"])] if kind != "ratio" else []
    if shown.empty or absent or "meprop" not in set(shown["method"]) and kind != "ratio":
        raise UserError(f"the '{kind}' plot compares methods {' and '.join(methods)}; completed runs of "
                        f"{' and '.join(absent or methods)} with k set are missing under the paths")
    keys = sorted(shown.groupby(["task", "optimizer"]).groups)
    fig, axes = panels(len(keys))
    for ax, (task, optimizer) in zip(axes, keys):
        here = frame[(frame["task"] == task) & (frame["optimizer"] == optimizer)]
        here = here[here["method"].isin((*methods, BASELINE))]
        differ = varying(here)
        for method in methods:
            for _, runs in here[(here["method"] == method) & here["ratio"].notna()].groupby("context"):
                points = sorted((r, *mean_std(g["test"])) for r, g in runs.groupby("ratio"))
                ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                            marker="o", capsize=3, label=label_of(method) + context_label(runs.iloc[0], differ))
        for setting, group in here[here["method"] == BASELINE].groupby("setting"):
            mean, _ = mean_std(group["test"])
            ax.axhline(mean, linestyle="--", color="gray", label=f"baseline h={sizes(group.iloc[0]['hidden'])}"
                       f"{context_label(group.iloc[0], differ)} (n={len(group)})")
        metric = here["metric"].dropna().iloc[0] if here["metric"].notna().any() else "score"
        ax.set(xlabel="backprop ratio k/h (%)" if kind != "small" else "k/h (meProp) or h'/h (small) (%)",
               ylabel=f"test {metric} (%)", title=f"{task} ({optimizer})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


def label_of(method: str) -> str:
    return {"meprop": "meProp (top-k)", "random": "meProp (random k)", "small": "small network (h = k)",
            "meprop_unified": "meProp (unified top-k)"}.get(method, method)


def setting_label(row: pd.Series) -> str:
    """Method, sizes (start→tested when they changed), k and meSimp's prune rate."""
    k, rate = number(row["k"]), number(row["prune_rate"])
    h = sizes(row["initial"]) + (f"→{sizes(row['hidden'])}" if row["hidden"] != row["initial"] else "")
    return f"{row['method']} h={h}" + (f" k={k:g}" if k is not None else "") + \
        (f" prune rate {rate:g}" if rate is not None else "")


def epoch_lines(runs: list[results.RunFolder]) -> pd.DataFrame:
    """One row per epoch-end evaluation of a completed run, with its setting and every metrics key."""
    frame = run_frame(runs)
    rows = []
    for run in runs:
        if run.status != "completed":
            continue
        info = frame[frame["run"] == str(run.path)].iloc[0]
        for line in run.metrics:
            if "epoch" not in line:
                continue
            dev = line.get("dev") or {}
            metric = info["metric"] or next(iter(dev), None)
            rows.append({**line, "run": str(run.path), "setting": info["setting"], "row": info,
                         "task": info["task"], "optimizer": info["optimizer"], "metric": metric,
                         "dev_score": percent(dev.get(metric))})  # null (a NaN) or infinite: no point
    return pd.DataFrame(rows)


def plot_curves(runs: list[results.RunFolder], out: Path) -> None:
    lines = epoch_lines(runs)
    if "train_loss" in lines:  # epoch ends only: evaluations every N steps would pile up on one epoch
        lines = lines[lines["train_loss"].notna()]
    if lines.empty or lines["dev_score"].isna().all():
        raise UserError("the 'curves' plot needs completed runs with dev scores in metrics.jsonl; none found")
    keys = sorted(lines.groupby(["task", "optimizer"]).groups)
    fig, axes = panels(len(keys))
    for ax, (task, optimizer) in zip(axes, keys):
        here = lines[(lines["task"] == task) & (lines["optimizer"] == optimizer) & lines["dev_score"].notna()]
        settings = sorted(here.groupby("setting"), key=lambda item: sort_key(item[1].iloc[0]["row"]))
        differ = varying(pd.DataFrame([group.iloc[0]["row"] for _, group in settings]))
        for _, group in settings:
            first = group.iloc[0]["row"]
            by_epoch = group.groupby("epoch")["dev_score"]
            seeds = group["run"].nunique()
            ax.plot(by_epoch.mean().index, by_epoch.mean().values, marker=".",
                    label=f"{setting_label(first)}{context_label(first, differ)} (n={seeds})")
        ax.set(xlabel="epoch", ylabel=f"dev {here['metric'].iloc[0]} (%)", title=f"{task} ({optimizer})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


def updates_per_epoch(metrics: list[dict[str, Any]]) -> float | None:
    ends = [m for m in metrics if "train_loss" in m and m.get("step") and m.get("epoch")]
    return ends[0]["step"] / ends[0]["epoch"] if ends else None


def position(line: dict[str, Any], metrics: list[dict[str, Any]]) -> float:
    """Epochs of training at this evaluation or prune check: step / updates per epoch (prunes happen within
    epochs)."""
    per_epoch = updates_per_epoch(metrics)
    if "step" in line and per_epoch:
        return line["step"] / per_epoch
    return float(line["epoch"])


def size_trace(run: results.RunFolder) -> list[tuple[float, list[int]]]:
    """(epochs, sizes) from the start (results.HIDDEN_INITIAL) through every prune check (results.PRUNE_CHECKS,
    each with its results.SIZES), or every evaluation's results.SIZES where a line has no checks."""
    points: list[tuple[float, list[int]]] = []
    initial = run.result.get(results.HIDDEN_INITIAL)
    if isinstance(initial, list) and initial:
        points.append((0.0, initial))
    for line in run.metrics:
        checks = line.get(results.PRUNE_CHECKS)
        if isinstance(checks, list) and checks:
            points += [(position(c, run.metrics), c[results.SIZES]) for c in checks
                       if isinstance(c.get(results.SIZES), list) and "epoch" in c]
        elif isinstance(line.get(results.SIZES), list) and "epoch" in line:
            points.append((position(line, run.metrics), line[results.SIZES]))
    return sorted(points, key=lambda point: point[0])


def group_labels(run: results.RunFolder, count: int) -> list[str]:
    """Names of the size groups: layers, or a BiLSTM layer's two directions (twice as many groups as the
    configured per-layer sizes, result "hidden")."""
    layers = run.result.get("hidden")
    if isinstance(layers, list) and layers and count == 2 * len(layers):
        return [f"layer {g // 2 + 1} {('left', 'right')[g % 2]}" for g in range(count)]
    return [f"layer {g + 1}" for g in range(count)]


def plot_mesimp(runs: list[results.RunFolder], out: Path) -> None:
    traced = [(run, size_trace(run)) for run in runs if run.status == "completed"]
    traced = [(run, points) for run, points in traced if len({tuple(s) for _, s in points}) > 1]
    if not traced:
        raise UserError(f"the 'mesimp' plot needs runs whose hidden sizes change in metrics.jsonl (key "
                        f"{results.PRUNE_CHECKS}, or {results.SIZES} per evaluation): no run under the paths has "
                        f"them (a meSimp run writes them; method=mesimp)")
    frame = run_frame([run for run, _ in traced]).set_index("run")
    info = {run.path: frame.loc[str(run.path)] for run, _ in traced}
    keys = sorted({(str(info[run.path]["task"]), str(info[run.path]["optimizer"])) for run, _ in traced})
    fig, axes = panels(len(keys))
    for ax, (task, optimizer) in zip(axes, keys):
        here = [(run, points) for run, points in traced
                if (str(info[run.path]["task"]), str(info[run.path]["optimizer"])) == (task, optimizer)]
        here.sort(key=lambda item: (sort_key(info[item[0].path]), str(item[0].path)))
        for run, points in here:
            row, per_epoch, best = info[run.path], updates_per_epoch(run.metrics), run.result.get("best_step")
            name = f"{setting_label(row)} seed {row['seed']} " if len(here) > 1 else ""
            for group, label in enumerate(group_labels(run, max(len(s) for _, s in points))):
                shown = [(x, s[group]) for x, s in points if group < len(s)]
                line, = ax.plot([x for x, _ in shown], [y for _, y in shown], drawstyle="steps-post",
                                label=name + label)
                if group == 0 and per_epoch and isinstance(best, (int, float)):
                    ax.axvline(best / per_epoch, linestyle=":", color=line.get_color(), alpha=0.7)
        title = f"{task} ({optimizer})" + ("" if len(here) > 1 else f" {setting_label(info[here[0][0].path])}")
        ax.set(xlabel="epoch (dotted: the step of the tested model)", ylabel="hidden size", title=title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


def plot_meact(runs: list[results.RunFolder], out: Path) -> None:
    lines = epoch_lines(runs)
    if "train_loss" in lines:  # epoch ends only
        lines = lines[lines["train_loss"].notna()]
    has = {key: key in lines and lines[key].notna().any() for key in (results.UPDATE_SIZE, results.ACTIVE_FRACTION)}
    if lines.empty or not any(has.values()):
        raise UserError(f"the 'meact' plot needs metrics.jsonl lines with {results.UPDATE_SIZE} (trainer.track_updates"
                        f"=true) or {results.ACTIVE_FRACTION} (method=meact); no run under the paths has them")
    metric = lines["metric"].dropna()  # runs without a dev score (dev {}) still draw their other panels
    panels_drawn = [("dev_score", f"dev {metric.iloc[0] if len(metric) else 'score'} (%)")]
    panels_drawn += [(key, label) for key, label in ((results.UPDATE_SIZE, "mean |update| per parameter"),
                                                     (results.ACTIVE_FRACTION, "active fraction of neurons"))
                     if has[key]]
    settings = sorted(lines.groupby("setting"), key=lambda item: sort_key(item[1].iloc[0]["row"]))
    fig, axes = panels(len(panels_drawn))
    for ax, (column, ylabel) in zip(axes, panels_drawn):
        for _, group in settings:
            label = setting_label(group.iloc[0]["row"])
            shown = group.dropna(subset=[column])
            if shown.empty:
                continue
            if column == results.ACTIVE_FRACTION:  # one line per hidden layer
                per_layer = pd.DataFrame(shown[column].tolist(), index=shown["epoch"]).groupby(level=0).mean()
                for layer in per_layer:
                    ax.plot(per_layer.index, per_layer[layer], marker=".", label=f"{label} layer {layer + 1}")
            else:
                values = shown.groupby("epoch")[column].mean()
                line, = ax.plot(values.index, values.values, marker=".", label=label)
                acting = group[results.MEACT_ACTING].fillna(False).astype(bool) if results.MEACT_ACTING in group else None
                if acting is not None and acting.any():
                    ax.axvline(group[acting]["epoch"].min() - 0.5, linestyle=":", color=line.get_color(), alpha=0.7)
        ax.set(xlabel="epoch (dotted: meAct starts)", ylabel=ylabel)
        if column == results.UPDATE_SIZE:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


# trainer.diagnostics' fields, as the panels of `--kind diagnostics` show them (diagnostics.py says what each is)
DIAGNOSTIC_PANELS = (("mean_abs_activation", "mean |activation|"), ("dead_fraction", "dead units (share)"),
                     ("kept_negative_fraction", "negative share: kept (solid), all nonzero (dashed)"),
                     ("gradient_cosine", "cos(kept, full output gradient)"))


def plot_diagnostics(runs: list[results.RunFolder], out: Path) -> None:
    lines = epoch_lines(runs)
    if lines.empty or results.DIAGNOSTICS not in lines or lines[results.DIAGNOSTICS].isna().all():
        raise UserError(f"the 'diagnostics' plot needs metrics.jsonl lines with {results.DIAGNOSTICS} "
                        "(trainer.diagnostics=true); no run under the paths has them")
    lines = lines.dropna(subset=[results.DIAGNOSTICS])
    settings = sorted(lines.groupby("setting"), key=lambda item: sort_key(item[1].iloc[0]["row"]))
    differ = varying(pd.DataFrame([group.iloc[0]["row"] for _, group in settings]))
    fig, axes = panels(1 + len(DIAGNOSTIC_PANELS))
    for number, (_, group) in enumerate(settings):
        first = group.iloc[0]["row"]
        label = f"{setting_label(first)}{context_label(first, differ)}"
        color = f"C{number % 10}"
        by_step = group.groupby("step")
        axes[0].plot(by_step["dev_score"].mean().index, by_step["dev_score"].mean().values, marker=".", color=color,
                     label=label)
        layers = len(group[results.DIAGNOSTICS].iloc[0])
        for layer in range(layers):
            fields = pd.DataFrame([line[layer] for line in group[results.DIAGNOSTICS]], index=group["step"])
            fields = fields.apply(pd.to_numeric, errors="coerce").groupby(level=0).mean()
            style = dict(color=color, marker=".", alpha=1.0 if layer == layers - 1 else 0.5)
            for ax, (key, _) in zip(axes[1:], DIAGNOSTIC_PANELS):
                ax.plot(fields.index, fields[key], label=f"{label} layer {layer + 1}", **style)
                if key == "kept_negative_fraction":
                    ax.plot(fields.index, fields["nonzero_negative_fraction"], linestyle="--", **style)
    axes[0].set(ylabel=f"dev {lines['metric'].dropna().iloc[0] if lines['metric'].notna().any() else 'score'} (%)")
    for ax, (key, ylabel) in zip(axes[1:], DIAGNOSTIC_PANELS):
        ax.set(ylabel=ylabel)
        if key == "mean_abs_activation":
            ax.set_yscale("log")
    for ax in axes:
        ax.set(xlabel="updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    save(fig, out)


def figure_format(out: Path) -> str:
    """The format the figure is written in: its file's suffix; a UserError for a folder or another suffix."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the figure's file, for example {out / 'figure.png'}")
    fmt = out.suffix[1:].lower()
    if fmt not in FIGURE_FORMATS:
        why = f"{out.suffix} is not a figure format" if out.suffix else "has no suffix to name the figure's format"
        raise UserError(f"--out {out}: {why}; end the name with .png (or "
                        f"{', '.join('.' + f for f in FIGURE_FORMATS[1:])})")
    return fmt


def save(fig: plt.Figure, out: Path) -> None:
    try:
        fig.tight_layout()
        with results.atomic_file(out, "wb") as f:
            fig.savefig(f, format=figure_format(out), dpi=120)
    finally:
        plt.close(fig)


def make_plot(paths: list[Path], kind: str, out: Path) -> list[results.RunFolder]:
    """Write the figure of the runs under paths to out; returns the runs that were left out (not completed)."""
    if kind not in KINDS:
        raise UserError(f"--kind {kind} is unknown; use one of {', '.join(KINDS)}")
    figure_format(out)  # before reading and drawing
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"{', '.join(missing)} does not exist: give run folders or sweep folders")
    runs = results.load_runs(*paths)
    if not any(run.status == "completed" for run in runs):
        raise UserError(f"no completed run under {', '.join(map(str, paths))} ({len(runs)} run folder(s) found, "
                        f"none completed)")
    if kind in RATIO_METHODS:
        plot_ratio(run_frame(runs), kind, out)
    elif kind == "curves":
        plot_curves(runs, out)
    elif kind == "mesimp":
        plot_mesimp(runs, out)
    elif kind == "diagnostics":
        plot_diagnostics(runs, out)
    else:
        plot_meact(runs, out)
    return [run for run in runs if run.status != "completed"]
