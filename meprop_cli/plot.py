"""`meprop plot`: the papers' figures as PNG files, from run folders only (headless, matplotlib Agg).

Kinds:
    ratio    accuracy vs backprop ratio k/h for meProp, the baseline as a dashed line (meProp Fig. 4 left)
    random   top-k vs random-k meProp at each ratio k/h (Fig. 4 middle)
    small    meProp at ratio k/h vs a small network with h' = k, at ratio h'/h (Fig. 4 right)
    curves   dev score over epochs, one line per setting (mean over seeds)
    mesimp   hidden layer sizes over training, one line per layer (metrics.jsonl key "hidden", a list)
    meact    dev score, active fraction and update magnitude over training (metrics.jsonl keys
             "active_fraction" and "update_magnitude"; "mean_abs_update" is read as the latter)
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
from meprop_cli.table import BASELINE, is_method_key, number, run_frame, sizes, sort_key  # noqa: E402

KINDS = ("ratio", "random", "small", "curves", "mesimp", "meact")
RATIO_METHODS = {"ratio": ("meprop", "meprop_unified"), "random": ("meprop", "random"), "small": ("meprop", "small")}
SIZE_KEYS = ("hidden", "hidden_sizes", "sizes")
ACTIVE_KEYS = ("active_fraction",)
UPDATE_KEYS = ("update_magnitude", "mean_abs_update")


def panels(count: int) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, count, figsize=(5.5 * count, 4.2), squeeze=False)
    return fig, list(axes[0])


def backprop_ratio(row: pd.Series) -> float | None:
    """k/h in %: the share of each hidden gradient kept (for method=small: its size h' over the full h)."""
    hidden, configured = row["hidden"], row["configured"]
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
    k = number(row["k"])
    return f"{row['method']} h={sizes(row['hidden'])}" + (f" k={k:g}" if k is not None else "")


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
                         "dev_score": 100.0 * dev[metric] if metric in dev else None})
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


def first_key(line: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((line[k] for k in keys if k in line and line[k] is not None), None)


def position(line: dict[str, Any], metrics: list[dict[str, Any]]) -> float:
    """Epochs of training at this evaluation: step / updates per epoch (prunes happen within epochs)."""
    ends = [m for m in metrics if "train_loss" in m and m.get("step") and m.get("epoch")]
    if "step" in line and ends:
        return line["step"] * ends[0]["epoch"] / ends[0]["step"]
    return float(line["epoch"])


def plot_mesimp(runs: list[results.RunFolder], out: Path) -> None:
    traced = [(run, [(position(line, run.metrics), first_key(line, SIZE_KEYS)) for line in run.metrics
                     if "epoch" in line and isinstance(first_key(line, SIZE_KEYS), list)])
              for run in runs if run.status == "completed"]
    traced = [(run, points) for run, points in traced if points]
    if not traced:
        raise UserError(f"the 'mesimp' plot needs metrics.jsonl lines with the hidden sizes (key "
                        f"{' or '.join(SIZE_KEYS)}, a list per evaluation); no run under the paths has them")
    fig, axes = panels(len(traced))
    for ax, (run, points) in zip(axes, traced):
        for layer in range(max(len(sizes_) for _, sizes_ in points)):
            xs = [x for x, s in points if layer < len(s)]
            ax.plot(xs, [s[layer] for _, s in points if layer < len(s)], marker=".", label=f"layer {layer + 1}")
        result = run.result
        ax.set(xlabel="epoch", ylabel="hidden size", title=f"{result.get('task')} {result.get('method')} "
               f"k={result.get('k')} ({run.path.name})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


def plot_meact(runs: list[results.RunFolder], out: Path) -> None:
    lines = epoch_lines(runs)
    has = {name: any(k in lines for k in keys) for name, keys in (("active", ACTIVE_KEYS), ("update", UPDATE_KEYS))}
    if lines.empty or not any(has.values()):
        raise UserError(f"the 'meact' plot needs metrics.jsonl lines with {' or '.join(ACTIVE_KEYS + UPDATE_KEYS)}; "
                        f"no run under the paths has them")
    series = [("dev_score", f"dev {lines['metric'].dropna().iloc[0]} (%)")]
    if has["active"]:
        series.append((next(k for k in ACTIVE_KEYS if k in lines), "active fraction of neurons"))
    if has["update"]:
        series.append((next(k for k in UPDATE_KEYS if k in lines), "mean absolute update per parameter"))
    fig, axes = panels(len(series))
    for ax, (column, ylabel) in zip(axes, series):
        for _, group in sorted(lines.groupby("setting"), key=lambda item: sort_key(item[1].iloc[0]["row"])):
            values = group.dropna(subset=[column]).groupby("epoch")[column].mean()
            if not values.empty:
                ax.plot(values.index, values.values, marker=".", label=setting_label(group.iloc[0]["row"]))
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, out)


def save(fig: plt.Figure, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def make_plot(paths: list[Path], kind: str, out: Path) -> list[results.RunFolder]:
    """Write the figure of the runs under paths to out; returns the runs that were left out (not completed)."""
    if kind not in KINDS:
        raise UserError(f"--kind {kind} is unknown; use one of {', '.join(KINDS)}")
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
    else:
        plot_meact(runs, out)
    return [run for run in runs if run.status != "completed"]
