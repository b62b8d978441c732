"""Recalibrate a forecast's interval on the backtests of OTHER runs (split-conformal, two-sided).

A masked-LM run of this project leaves its bigram plateau (accuracy near the bigram count
table's) at a step no fit of the points before it can see: the raw intervals of the forecasts
cover far less than 95 % there (docs/ANALYSIS.md, "Head to head"). This module widens, or
narrows, an interval by what the backtests of other runs in the same *class* needed:

* the class is ``"{kind}/{phase}"``: ``kind`` ``accuracy`` or ``loss``; ``phase`` from the run's
  count-table baselines (``zhbert.baselines``, recorded in a history's ``meta``) and its accuracy
  at the cut (:func:`phase`): ``plateau`` up to the best bigram table's accuracy plus
  :data:`PLATEAU_PAD`, ``context`` above. An older history of this project without baselines
  gets its kind's class, every phase pooled. A lower-is-better series of any source forecast
  without an lr schedule (fitted in steps: the schedule's annealing still to come is unknown)
  has the class :data:`NO_SCHEDULE`. Any other series (another tool's log with its lr, a public
  curve, the original study's file) has no class and keeps its raw interval;
* a backtest's excess over each edge, ``(actual - upper)`` and ``(lower - actual)``, is measured
  in the kind's unit (accuracy points; loss in % of the forecast value) and divided by the square
  root of the interval's width in that unit (:func:`excess`);
* per class, the ``ceil((n + 1)(1 - alpha/2))``-th smallest of the ``n`` excesses of each edge
  is that edge's shift (:func:`fit`): the split-conformal quantile (Vovk et al. 2005; Romano et
  al. 2019 for intervals), so each edge misses at most alpha/2 of the time if the run is
  exchangeable with the calibration runs. A negative shift narrows, but only from a pool large
  enough for that rank (``n >= 39`` at 95 %); a smaller pool takes its largest excess and never
  narrows, which is conservative. A class with fewer than :data:`MIN_POOL` backtests is left
  out.

The package's calibration, ``interval_calibration.json``, is fitted on the backtests of this
project's committed run histories and, for :data:`NO_SCHEDULE`, of the public loss curves with
their lr column withheld (``python studies/forecast_peers.py --write-calibration
zhbert/analysis/interval_calibration.json``); the head-to-head study refits it leaving out the
curve it scores.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from zhbert import history_schema as H
from zhbert.baselines import read_baselines
from zhbert.io_utils import read_json

CAL_FILE = Path(__file__).with_name("interval_calibration.json")
#: the plateau class reaches this far (accuracy fraction) above the best bigram table
PLATEAU_PAD = 0.01
#: a class needs at least this many backtests to be used
MIN_POOL = 10
#: widths are floored at this (in the kind's unit) before they divide an excess
WIDTH_FLOOR = 0.25
#: how an excess is scaled: by the square root of the width (the package's), the width, or not
NORMS = ("sqrt_width", "width", "additive")
#: the phases of this project's runs (each also pools into its kind's class)
PHASES = ("plateau", "context")
#: the class of a lower-is-better forecast made without an lr schedule, whatever its source
NO_SCHEDULE = "loss/no-schedule"


def phase(level: float, baselines: dict | None) -> str | None:
    """``"plateau"`` or ``"context"`` for an accuracy ``level`` (fraction) against the count
    tables' accuracies, None without bigram baselines.

    >>> phase(0.12, {"left_bigram": 0.16, "right_bigram": 0.15}), phase(0.3, {"left_bigram": 0.16})
    ('plateau', 'context')
    >>> phase(0.3, None) is None
    True
    """
    bigram = [v for k, v in (baselines or {}).items() if k.endswith("bigram")]
    if not bigram or not math.isfinite(level):
        return None
    return "plateau" if level < max(bigram) + PLATEAU_PAD else "context"


def cut_level(acc: np.ndarray) -> float:
    """The accuracy level at a cut: the mean of the last third of the points.

    >>> cut_level(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    0.55
    """
    acc = np.asarray(acc, np.float64)
    return float(np.mean(acc[2 * len(acc) // 3:])) if acc.size else float("nan")


def series_class(kind: str, acc_at_cut: np.ndarray | None, meta: dict | None) -> str | None:
    """The class of a forecast of a ``kind`` series whose run's accuracy up to the cut is
    ``acc_at_cut`` (None: unknown) and whose history ``meta`` holds the baselines."""
    if kind not in ("accuracy", "loss"):
        raise ValueError(f"unknown kind {kind!r}")
    if acc_at_cut is None or len(acc_at_cut) == 0:
        return None
    p = phase(cut_level(acc_at_cut), read_baselines(meta))
    return None if p is None else f"{kind}/{p}"


def _scale(kind: str, value: float) -> float:
    """Units per value: accuracy points per fraction; loss % of the forecast value."""
    return 100.0 if kind.startswith("accuracy") else 100.0 / max(abs(value), 1e-12)


def _divisor(width: float, norm: str) -> float:
    """What an excess (in the kind's unit) is divided by, for an interval ``width`` there."""
    width = max(width, WIDTH_FLOOR)
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (one of {', '.join(NORMS)})")
    return {"sqrt_width": math.sqrt(width), "width": width, "additive": 1.0}[norm]


def excess(kind: str, value: float, lower: float, upper: float, actual: float,
           norm: str = "sqrt_width") -> tuple[float, float]:
    """``(upper edge, lower edge)`` excess of ``actual`` over the interval, in the kind's unit
    over :func:`_divisor` (by default the square root of the width; negative inside).

    >>> [round(e, 3) for e in excess("accuracy", 0.2, 0.15, 0.24, 0.25)]
    [0.333, -3.333]
    >>> [round(e, 3) for e in excess("accuracy", 0.2, 0.15, 0.24, 0.25, norm="additive")]
    [1.0, -10.0]
    """
    s = _scale(kind, value)
    d = _divisor((upper - lower) * s, norm)
    return (actual - upper) * s / d, (lower - actual) * s / d


def fit(records: Iterable[dict], level: float = 0.95, norm: str = "sqrt_width",
        narrow_small_pools: bool = False) -> dict:
    """The per-class edge shifts from backtest ``records`` (each with ``cls``, ``kind``,
    ``value``, ``lower``, ``upper``, ``actual``): ``{"level", "norm", "rule", "classes": {cls:
    {"n", "upper", "lower"}}}``, with a class per kind as well (``accuracy``, ``loss``: every
    phase pooled, for a run whose phase is unknown); classes with fewer than :data:`MIN_POOL`
    records are left out.
    ``norm`` is one of :data:`NORMS`; ``narrow_small_pools`` lets a pool too small for the
    conformal rank narrow an edge as well (studied in docs/ANALYSIS.md; not the package's).

    >>> recs = [{"cls": "accuracy/plateau", "kind": "accuracy", "value": 0.2, "lower": 0.18,
    ...          "upper": 0.22, "actual": 0.2 + 0.01 * i} for i in range(12)]
    >>> cal = fit(recs)["classes"]
    >>> c = cal["accuracy/plateau"]
    >>> c["n"], round(c["upper"], 3), round(c["lower"], 3)  # 12 are too few to narrow an edge
    (12, 4.5, 0.0)
    >>> sorted(cal), cal["accuracy"] == c  # the kind's pool of every phase (here one)
    (['accuracy', 'accuracy/plateau'], True)
    """
    alpha = 1.0 - level
    pools: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        if r.get("cls") is None:
            continue
        e = excess(r["kind"], r["value"], r["lower"], r["upper"], r["actual"], norm)
        pools.setdefault(r["cls"], []).append(e)
        kind, _, part = r["cls"].partition("/")
        if part in PHASES:  # every phase also pools into its kind (a run of unknown phase)
            pools.setdefault(kind, []).append(e)
    classes = {}
    for cls, ex in sorted(pools.items()):
        n = len(ex)
        k = min(math.ceil((n + 1) * (1 - alpha / 2)), n)  # a small pool: its largest
        if n < MIN_POOL:
            continue
        up, lo = np.sort([e[0] for e in ex]), np.sort([e[1] for e in ex])
        shifts = [float(up[k - 1]), float(lo[k - 1])]
        small = n < math.ceil((n + 1) * (1 - alpha / 2))
        if small and not narrow_small_pools:  # too few to narrow
            shifts = [max(v, 0.0) for v in shifts]
        classes[cls] = {"n": n, "upper": shifts[0], "lower": shifts[1]}
    return {"level": level, "norm": norm,
            "rule": f"split-conformal per class: excess over each edge in the kind's unit / "
                    f"{norm}; the ceil((n+1)(1-alpha/2))-th smallest (at most the largest; a "
                    f"pool too small for that rank "
                    f"{'may narrow' if narrow_small_pools else 'never narrows'})",
            "classes": classes}


def apply(kind: str, value: float, lower: float, upper: float, cls: str | None,
          calibration: dict | None) -> dict | None:
    """The recalibrated interval ``{"lower", "upper", "raw", "class", "n", "shift"}``, or None
    when ``cls`` has no entry in ``calibration`` (the raw interval stands). The interval always
    holds the point forecast; an accuracy stays within [0, 1].

    >>> cal = {"classes": {"accuracy/plateau": {"n": 20, "upper": 1.0, "lower": -0.5}}}
    >>> r = apply("accuracy", 0.2, 0.18, 0.22, "accuracy/plateau", cal)
    >>> round(r["lower"], 4), round(r["upper"], 4)
    (0.19, 0.24)
    """
    entry = ((calibration or {}).get("classes") or {}).get(cls) if cls else None
    if entry is None:
        return None
    s = _scale(kind, value)
    d = _divisor((upper - lower) * s, calibration.get("norm", "sqrt_width"))
    lo = min(lower - entry["lower"] * d / s, value)
    hi = max(upper + entry["upper"] * d / s, value)
    if kind == "accuracy":
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return {"lower": float(lo), "upper": float(hi), "raw": [float(lower), float(upper)],
            "class": cls, "n": int(entry["n"]), "shift": [entry["lower"], entry["upper"]]}


@functools.lru_cache(maxsize=1)
def default_calibration() -> dict:
    """The calibration shipped with the package (see the module docstring for its command),
    read once per process (callers only read it)."""
    return read_json(CAL_FILE, "the forecast interval calibration")


#: the series a calibration class covers: its kind by (series kind, metric)
_KINDS = {(H.EVAL_MLM_ACC, "eval"): "accuracy", (H.MLM_ACC, "train"): "accuracy",
          (H.EVAL_LOSS, "eval"): "loss", (H.LOSS, "train"): "loss"}


def history_class(history, series, upto_step: float) -> str | None:
    """The class of a forecast of ``series`` (a ``zhbert.analysis.history.Series``) of
    ``history`` from its points up to ``upto_step``: the run's masked-LM accuracy of the same
    kind (held-out or training-batch) up to there, against the baselines in its ``meta``; the
    kind alone (every phase pooled) for a history of this project that records no baselines.
    None for a series no class covers (another tool's log, the original study's file, another
    metric, no accuracy column)."""
    kind = _KINDS.get((series.metric, series.kind))
    frame = history.eval if series.kind == "eval" else history.train
    steps_key, acc_key = ((H.EVAL_STEPS, H.EVAL_MLM_ACC) if series.kind == "eval"
                          else (H.STEPS, H.MLM_ACC))
    if kind is None or frame is None or acc_key not in frame.columns:
        return None
    steps = frame[steps_key].to_numpy(np.float64)
    acc = frame[acc_key].to_numpy(np.float64)
    keep = (steps <= upto_step) & np.isfinite(acc)
    cls = series_class(kind, acc[keep], history.meta)
    if cls is None and history.format == "zhbert" and keep.any():
        return kind  # an older history of this project, without baselines: phase unknown
    return cls


def forecast_class(forecast: dict, history, series, upto_step: float) -> str | None:
    """The class of ``forecast`` (of ``series`` from its points up to ``upto_step``):
    :data:`NO_SCHEDULE` for a lower-is-better forecast fitted in steps, else
    :func:`history_class`."""
    if not series.higher_is_better and forecast.get("time_axis") == "steps":
        return NO_SCHEDULE
    return history_class(history, series, upto_step)


def recalibrated(forecast: dict, history, series, upto_step: float,
                 calibration: dict | None = None) -> dict:
    """``forecast`` (a ``forecast_final`` or ``forecast_lower`` result) with its interval
    recalibrated when its class has a calibration entry: ``ci95`` (and a loss forecast's
    ``lower``/``upper``) replaced, ``ci95_raw`` the forecaster's own, and a ``recalibration``
    block saying what was done (``applied`` False, with why, otherwise). The band of the figure
    stays raw."""
    out = dict(forecast)
    ci = forecast.get("ci95") or [None, None]
    cls = forecast_class(forecast, history, series, upto_step)
    block = {"applied": False, "class": cls, "why": None}
    if not forecast.get("ok") or None in ci or forecast.get("value") is None:
        block["why"] = "no interval to recalibrate"
    elif cls is None:
        block["why"] = ("no class: the run records no count-table baselines or the series is "
                        "not masked-LM accuracy or loss, and it is not a lower-is-better series "
                        "forecast without an lr schedule")
    else:
        cal = calibration if calibration is not None else default_calibration()
        kind = cls.split("/")[0]
        log = forecast.get("transform") == "log"  # a perplexity: recalibrated as its log, a loss
        to, back = (math.log, math.exp) if log else (float, float)
        r = apply(kind, to(forecast["value"]), to(ci[0]), to(ci[1]), cls, cal)
        if r is not None and log:
            r = {**r, "lower": back(r["lower"]), "upper": back(r["upper"]),
                 "raw": [float(ci[0]), float(ci[1])]}
        if r is None:
            block["why"] = f"the calibration has no entry for {cls}"
        else:
            block = {"applied": True, **r}
            out["ci95_raw"] = [float(ci[0]), float(ci[1])]
            out["ci95"] = [r["lower"], r["upper"]]
            if "lower" in out:
                out["lower"], out["upper"] = r["lower"], r["upper"]
    out["recalibration"] = block
    return out
