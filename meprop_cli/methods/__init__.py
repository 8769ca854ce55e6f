"""Method registry: the name used in `method=NAME` (conf/method/NAME.yaml) → the Method class.

The methods that only choose how layers back-propagate (full, meProp per example or unified, random-k,
small hidden, meProp-CNN) are the base Method, set by their config; a method that acts during training
is a module of its own (mesimp.py, meact.py) with its typed config in meprop_cli.config.
"""
from __future__ import annotations

from typing import Any

from meprop_cli.methods.base import ROLES, Change, Method, Step
from meprop_cli.methods.meact import MeAct
from meprop_cli.methods.mesimp import MeSimp

METHODS: dict[str, type[Method]] = {
    "baseline": Method,
    "meprop": Method,
    "meprop_unified": Method,
    "random": Method,
    "small": Method,
    "meprop_cnn": Method,
    "mesimp": MeSimp,
    "meact": MeAct,
}


def build_method(cfg: Any) -> Method:
    """The Method of a validated run config (meprop_cli.config.validate has run)."""
    # A method yaml of the user's own (e.g. another mode) that names no registered class is a base Method.
    return METHODS.get(cfg.method.name, Method).from_config(cfg)


__all__ = ["METHODS", "ROLES", "Change", "Method", "Step", "build_method"]
