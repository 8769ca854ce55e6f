"""Cells: the stats of a setting's runs, and how each column style shows them."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meprop_cli.table.kinds import Column

Stats = tuple[float, float | None, int]  # mean, std (None for one value), count


def stats(values: list[float]) -> Stats | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std, len(values)


def size_stats(values: list[Any]) -> list[Stats] | None:
    """Per group of hidden neurons, the stats of its size over the runs (None if their group counts differ)."""
    found = [tuple(v) for v in values if isinstance(v, (list, tuple)) and v]
    if not found or len({len(v) for v in found}) > 1:
        return None
    return [stats([float(v[g]) for v in found]) for g in range(len(found[0]))]


def fmt_time(seconds: float, like: float | None = None) -> str:
    """Seconds with 2 decimals below 10 s, else 1 (paper style: 9,077.7); `like` picks them for a std."""
    return f"{seconds:,.2f}" if (seconds if like is None else like) < 10 else f"{seconds:,.1f}"


def fmt_sizes(value: list[Stats] | None) -> str:
    """Per group: the size, or mean ± std when the seeds' sizes differ ('430 ± 13, 256 ± 8')."""
    if not value:
        return "-"
    if all(not std for _, std, _ in value):
        return ",".join(f"{mean:g}" for mean, _, _ in value)
    return ", ".join(f"{mean:.0f} ± {std or 0:.0f}" for mean, std, _ in value)


def fmt_mean(value: Any, style: str) -> str:
    if style == "sizes":
        return fmt_sizes(value)
    if value is None:
        return "-"
    mean, std, _ = value
    if style == "count" and std is None:
        return f"{mean:g}"
    if style == "time":
        text = fmt_time(mean)
        return text if std is None else f"{text} ± {fmt_time(std, like=mean)}"
    if style == "ratio":
        return f"{mean:.2f}x" if std is None else f"{mean:.2f}x ± {std:.2f}"
    fmt = {"score": "{:.2f}", "pct": "{:.1f}", "count": "{:.1f}", "int": "{:,.0f}"}[style]
    text = fmt.format(mean)
    return text if std is None else f"{text} ± {fmt.format(std)}"


def cell(entry: dict[str, Any], column: Column) -> str:
    text = fmt_mean(entry.get(column.field), column.style)
    extra = entry.get(column.extra) if column.extra else None
    if extra is not None and text != "-":
        mean = extra[0]
        text += f" ({mean:+.2f})" if column.style == "score" else f" ({mean:.1f}x)"
    return text
