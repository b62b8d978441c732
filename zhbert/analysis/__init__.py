"""Statistics of MLM accuracy against training step (see docs/ANALYSIS.md).

Public API::

    h = load_history(path)                 # History; UserError on bad input
    h = load_source(path, metric=None)     # any log: trainer_state.json, TensorBoard, CSV too
    s = select_series(h, "auto")           # Series(kind, steps, acc)
    result = analyze(h, series="auto", target_step=None, compare=[(label, History)], seed=0)
    y = evaluate_family(name, params, t)   # a fitted curve at raw steps t
"""

from zhbert.analysis.core import analyze
from zhbert.analysis.curves import FAMILIES, evaluate_family
from zhbert.analysis.history import History, Series, load_history, select_series
from zhbert.analysis.report import format_report
from zhbert.analysis.sources import load_source

__all__ = ["FAMILIES", "History", "Series", "analyze", "evaluate_family", "format_report",
           "load_history", "load_source", "select_series"]
