"""Aggregation: the runs of one setting (its seeds) become one row of mean ± std cells."""
from __future__ import annotations

from typing import Any

import pandas as pd

from meprop_cli.table.cells import size_stats, stats
from meprop_cli.table.frame import number
from meprop_cli.table.kinds import KEY_FIELDS, METHOD_ORDER, Kind


def method_rank(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def sort_key(row: pd.Series) -> tuple:
    """Task, optimizer, depth, dropout, then the baseline first and methods in METHOD_ORDER, then meSimp's
    prune rate, h, k."""
    def num(field: str) -> float:
        return number(row[field]) or 0.0

    return (str(row["task"]), str(row["optimizer"]), num("layers"), num("dropout"), str(row["batch_norm"]),
            method_rank(str(row["method"])), num("prune_rate"), tuple(row["hidden"] or ()), num("k"),
            num("topk_ratio"), num("decay"))


def aggregate(frame: pd.DataFrame, kind: Kind) -> tuple[list[dict[str, Any]], list[str]]:
    """One entry per setting: the key cells, and mean/std/n of every value field; plus notes."""
    notes: list[str] = []
    groups = []
    for _, group in frame.groupby("setting", sort=False, dropna=False):
        first = group.iloc[0]
        entry: dict[str, Any] = {"_first": first, "_group": group, "_runs": list(group["run"]), "n": len(group),
                                 "seeds": sorted(group["seed"].tolist())}
        for name, (_, cell_of) in KEY_FIELDS.items():
            entry[name] = cell_of(first)
        for column in kind.values:
            if column.style == "sizes":
                entry[column.field] = size_stats(list(group[column.field]))
                continue
            for field in (column.field, column.extra):
                if field:
                    entry[field] = stats([v for v in (number(x) for x in group[field]) if v is not None])
        seeds = entry["seeds"]
        if len(set(seeds)) < len(seeds):
            notes.append(f"{describe(entry, kind)} has {len(seeds)} runs but seeds {seeds}: the same seed twice "
                         f"(the runs are averaged as if independent): {', '.join(entry['_runs'])}")
        groups.append(entry)
    groups.sort(key=lambda e: sort_key(e["_first"]))
    if kind.arrange is not None:
        groups = kind.arrange(groups)
    return groups, notes


def describe(entry: dict[str, Any], kind: Kind) -> str:
    return " ".join(f"{KEY_FIELDS[k][0]}={entry[k]}" for k in kind.keys)


def distinguishing(groups: list[dict[str, Any]], kind: Kind) -> list[str]:
    """Setting values to show besides the kind's keys, so that no two rows look the same."""
    def shown(entry: dict[str, Any], extra: list[str]) -> tuple:
        return tuple(entry[k] for k in kind.keys) + tuple(repr(entry["_first"]["_setting"].get(x)) for x in extra)

    extra: list[str] = []
    candidates = sorted({key for e in groups for key in e["_first"]["_setting"]})
    while len({shown(e, extra) for e in groups}) < len(groups):
        clashes: dict[tuple, list[dict[str, Any]]] = {}
        for entry in groups:
            clashes.setdefault(shown(entry, extra), []).append(entry)
        varying = [key for key in candidates if key not in extra and any(
            len({repr(e["_first"]["_setting"].get(key)) for e in clash}) > 1 for clash in clashes.values())]
        if not varying:
            break
        extra.append(varying[0])
    return extra


def numeric_row(entry: dict[str, Any], spec: Kind, extra: list[str]) -> dict[str, Any]:
    """The row as numbers (CSV): each value's mean and std in two columns; sizes as 'a,b' per group."""
    row: dict[str, Any] = {KEY_FIELDS[k][0]: entry[k] for k in spec.keys}
    row.update({x: entry["_first"]["_setting"].get(x) for x in extra})
    for column in spec.values:
        value = entry.get(column.field)
        if column.style == "sizes":
            row[column.header] = ",".join(f"{round(v[0], 2):g}" for v in value) if value else None
            spread = value and all(v[1] is not None for v in value)  # one run: no std, as for the other columns
            row[f"{column.header} std"] = ",".join(f"{round(v[1], 2):g}" for v in value) if spread else None
            continue
        row[column.header] = round(value[0], 6) if value else None
        row[f"{column.header} std"] = round(value[1], 6) if value and value[1] is not None else None
        if column.extra:
            name = "delta" if column.style == "score" else "speedup"
            row[f"{column.header} {name}"] = round(entry[column.extra][0], 6) if entry.get(column.extra) else None
    row["n"] = entry["n"]
    row["seeds"] = " ".join(map(str, entry["seeds"]))
    return row
