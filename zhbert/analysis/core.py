"""``analyze``: every statistic of one history (and optional comparison runs) as one JSON dict."""

from __future__ import annotations

import datetime as _dt
import math
import warnings
from typing import Any

import numpy as np

from zhbert import history_schema as H
from zhbert.analysis.backtest import DEFAULT_CUTS, backtest
from zhbert.analysis.compare import comparison
from zhbert.analysis.correlation import correlations, describe, loss_stats
from zhbert.analysis.curves import choose_best, evaluate_family, fit_all, fit_family
from zhbert.analysis.forecast import BAND_POINTS, DEFAULT_N_BOOT, forecast_final, resolve_target
from zhbert.analysis.history import MIN_POINTS, History, Series, select_series
from zhbert.analysis.lower import LOWER_FAMILIES, forecast_lower, metric_block
from zhbert.analysis.phases import marginal_gain, noise_block, phases
from zhbert.analysis.recalibrate import recalibrated
from zhbert.analysis.schedule import history_schedule
from zhbert.analysis.trend import trend_analysis
from zhbert.baselines import analysis_block, unigram_floor


def _column(history: History, name: str) -> np.ndarray | None:
    frame = history.train
    return frame[name].to_numpy(dtype=np.float64) if name in frame.columns else None


def _loss_fit(history: History) -> dict | None:
    loss = _column(history, H.LOSS)
    if loss is None or len(loss) < 10:
        return None
    fit = fit_family("loss_power_law", _column(history, H.STEPS), loss)
    return {"family": "loss_power_law", "series_kind": "train", **fit}


def series_reason(history: History, s: Series, requested: str) -> str:
    """Why this series was analysed (said in the JSON and the report: no silent switch)."""
    if history.metric_series is not None:
        return f"the metric {s.metric} ({s.kind} series, {s.n} points)"
    if requested != "auto":
        return f"requested with --series {requested}"
    if s.kind == "eval":
        return f"held-out series present ({s.n} points >= {MIN_POINTS})"
    if history.eval is None or len(history.eval) == 0:
        return "no held-out series in the history: training-batch accuracy used"
    data = ((history.meta or {}).get(H.META_CONFIG) or {}).get("data") or {}
    rates = (f" (masking rate {data['mask_rate']:g} vs {data['eval_mask_rate']:g} held out)"
             if "mask_rate" in data and "eval_mask_rate" in data else "")
    return (f"the held-out series has only {len(history.eval)} points (< {MIN_POINTS}): "
            f"training-batch accuracy used instead; it is measured on training batches"
            f"{rates}, so its level differs from held-out accuracy")


def _band_steps(steps: np.ndarray, target: float) -> np.ndarray:
    first, last = float(steps[steps > 0].min()), float(steps[-1])
    return np.linspace(first, max(target, last), BAND_POINTS)


def _extrapolation(history: History, s: Series, schedule, target: float,
                   target_step: float | None, n_boot: int, seed: int) -> dict:
    """The forecast at the target step: the accuracy forecast, or the loss forecaster's for a
    lower-is-better series (:mod:`zhbert.analysis.lower`), its interval recalibrated on other
    runs' backtests where its class has an entry (:mod:`zhbert.analysis.recalibrate`)."""
    if not s.higher_is_better:
        _, source = resolve_target(s.steps, schedule, target_step)
        f = forecast_lower(s.steps, s.acc, schedule, target, target_source=source, metric=s.metric,
                           n_boot=n_boot, seed=seed)
    else:
        f = forecast_final(s.steps, s.acc, schedule, target_step, n_boot=n_boot, seed=seed,
                           band_steps=_band_steps(s.steps, target),
                           floor=unigram_floor(history.meta))
    return recalibrated(f, history, s, float(s.steps[-1]))


def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN/inf to None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def analyze(history: History, series: str = "auto", target_step: float | None = None,
            compare: list[tuple[str, History]] | None = None, seed: int = 0,
            n_boot: int = DEFAULT_N_BOOT, label: str | None = None,
            continue_lr: str | float | None = None, backtest_cuts=None) -> dict:
    """Analyse ``history`` (see docs/ANALYSIS.md for every key); pure apart from the timestamp.

    ``compare`` is a list of ``(label, History)``; this history is the reference, labelled
    ``label`` (default: its file stem). ``continue_lr`` ("constant" or an lr) allows a target
    past the planned schedule; ``backtest_cuts`` (fractions) adds the ``backtest`` block.
    """
    s = select_series(history, series)
    schedule = history_schedule(history)
    if schedule is not None:
        schedule = schedule.with_continuation(continue_lr)
    target, _ = resolve_target(s.steps, schedule, target_step)  # refuses before any work
    notes = list(history.warnings)
    acc = s.acc
    what = "accuracy" if s.higher_is_better else s.metric
    with warnings.catch_warnings():
        if np.ptp(acc) == 0:  # every statistic below is undefined: say so once, not per library
            notes.append(f"the {s.kind} {what} series is constant ({acc[0]:.4g} at every "
                         f"point): correlations, trend tests and fits are undefined (n/a)")
            warnings.simplefilter("ignore")
        return _analyze(history, s, schedule, target, target_step, notes, compare, seed,
                        n_boot, label, series, backtest_cuts)


def _analyze(history: History, s: Series, schedule, target: float, target_step: float | None,
             notes: list[str], compare, seed: int, n_boot: int, label: str | None, series: str,
             backtest_cuts) -> dict:
    """The body of :func:`analyze` once the series, plan and target are settled."""
    steps, acc = s.steps, s.acc
    train_steps = _column(history, H.STEPS)
    corr = correlations(steps, acc)
    fits = fit_all(steps, acc, None if s.higher_is_better else LOWER_FAMILIES)
    best = choose_best(fits)
    best_resid = (acc - evaluate_family(best["family"], best["params"], steps)
                  if best is not None else None)
    out = {
        "timestamp": _dt.datetime.now().isoformat(),
        "total_steps": int(train_steps[-1]),
        "data_points": s.n,
        "pearson_correlation": corr["pearson_correlation"],
        "r_squared": corr["r_squared"],
        "mlm_stats": describe(acc) if s.higher_is_better else None,
        "metric": metric_block(s),
        "loss_stats": loss_stats(_column(history, H.LOSS)),
        "input": {"path": str(history.path), "format": history.format,
                  "dropped_nonfinite": history.dropped_nonfinite, "warnings": notes},
        "series": {"kind": s.kind, "n": s.n, "requested": series,
                   "reason": series_reason(history, s, series)},
        "pearson": corr["pearson"], "spearman": corr["spearman"], "kendall": corr["kendall"],
        "trend": trend_analysis(steps, acc, corr["pearson"]["r"], corr["pearson"]["p_value"],
                                best_resid, best["family"] if best else None),
        "curve_fits": fits,
        "loss_fit": _loss_fit(history),
        "best_fit": best,
        "extrapolation": _extrapolation(history, s, schedule, target, target_step, n_boot, seed),
        "phases": phases(steps, acc, train_steps, _column(history, H.LR)),
        "marginal_gain": marginal_gain(best, steps),
        "noise": noise_block(acc, s.kind),
    }
    baselines = analysis_block(history.meta, float(acc[-1]) if s.kind == "eval"
                               and s.metric == H.EVAL_MLM_ACC else None)
    if baselines is not None and s.higher_is_better:  # accuracy floors: not for a loss
        out[H.META_BASELINES] = baselines
    if backtest_cuts:
        out["backtest"] = backtest(history, s, schedule, backtest_cuts, n_boot, seed)
    if compare:
        runs = [(label or history.path.stem, str(history.path), s)]
        runs += [(lab, str(h.path), select_series(h, series if series != "eval" else "auto"))
                 for lab, h in compare]
        out["comparison"] = comparison(runs)
    return jsonable(out)


__all__ = ["DEFAULT_CUTS", "analyze", "jsonable", "series_reason"]
