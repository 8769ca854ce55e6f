"""Transition-based dependency parsing (Chen & Manning 2014), the meProp paper's parsing task."""
from meprop_cli.tasks.parse.task import ParseTask

__all__ = ["ParseTask"]
