"""Backtest the forecast: cut a history early, forecast its final step, compare with what happened.

For each cut fraction q the series is truncated at ``q x last step`` and
:func:`zhbert.analysis.forecast.forecast_final` forecasts the series' last step under the run's
planned schedule (known when the run starts, so it is not a leak). The "actual" value is

* held-out series: the last point, with its recorded standard error (``eval_stderr``);
* training-batch series: the mean of the last 5% of points (one batch is too noisy), with the
  standard error of that mean under AR(1) autocorrelation,

and the forecast's interval is for that measurement (curve uncertainty + its noise). Each row
and the summary report the interval's width and its interval score
(``zhbert.analysis.scoring.interval_score``: width + 2/alpha x the miss), beside coverage.
"""

from __future__ import annotations

import math

import numpy as np

from zhbert import history_schema as H
from zhbert.analysis.forecast import DEFAULT_N_BOOT, LEVEL, forecast_final
from zhbert.analysis.history import History, Series
from zhbert.analysis.lower import forecast_lower
from zhbert.analysis.recalibrate import recalibrated
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.scoring import interval_score
from zhbert.analysis.trend import effective_n, lag1_autocorr, tail_noise_sd
from zhbert.baselines import unigram_floor

DEFAULT_CUTS = (0.1, 0.2, 0.3, 0.5)
#: training series: the actual is the mean of this last fraction of the points
ACTUAL_FRACTION = 0.05


def actual_value(history: History, series: Series) -> dict:
    """The measured final value and its standard error, and how it was measured."""
    if series.kind == "eval":
        se = None
        if series.metric == H.EVAL_MLM_ACC and H.EVAL_STDERR in history.eval.columns:
            v = float(history.eval[H.EVAL_STDERR].to_numpy(dtype=np.float64)[-1])
            se = v if math.isfinite(v) and v > 0 else None
        how = "last held-out point"
        if se is None:  # no recorded standard error: the point-to-point noise near the end
            se = tail_noise_sd(series.acc)
            how += " (its noise: second differences of the last half of the points)"
        return {"value": float(series.acc[-1]), "stderr": se, "how": how}
    m = max(2, int(round(ACTUAL_FRACTION * series.n)))
    tail = series.acc[-m:]
    se = float(np.std(tail, ddof=1)) / math.sqrt(effective_n(m, lag1_autocorr(tail)))
    return {"value": float(tail.mean()), "stderr": se,
            "how": f"mean of the last {m} training-batch points ({ACTUAL_FRACTION:.0%})"}


def _weights(f: dict) -> dict:
    """Each family's weight in the forecast (those with none left out)."""
    fams = f.get("families") or {}
    return {k: v["weight"] for k, v in fams.items() if isinstance(v, dict) and v.get("weight")}


def _forecast(history: History, series: Series, m: np.ndarray, schedule, last: float,
              sd: float, n_boot: int, seed: int, recalibrate: bool = True) -> dict:
    """The forecast of the last step from the points ``m``: the accuracy forecast, or the loss
    forecaster's for a lower-is-better series; recalibrated as in the analysis
    (:func:`zhbert.analysis.recalibrate.recalibrated`)."""
    if not series.higher_is_better:
        f = forecast_lower(series.steps[m], series.acc[m], schedule, last, noise_sd=sd,
                           n_boot=n_boot, seed=seed, metric=series.metric)
    else:
        f = forecast_final(series.steps[m], series.acc[m], schedule, last, n_boot=n_boot,
                           seed=seed, measurement_sd=sd, floor=unigram_floor(history.meta))
    return recalibrated(f, history, series, float(series.steps[m][-1])) if recalibrate else f


def backtest(history: History, series: Series, schedule: Schedule | None,
             cuts=DEFAULT_CUTS, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
             recalibrate: bool = True, actual: dict | None = None) -> dict:
    """Forecast the last step from each cut; rows plus mean absolute error and coverage.
    ``recalibrate`` False keeps the forecaster's own intervals (a study of the forecaster on
    the histories the package's calibration was fitted on); ``actual`` (``{"value", "stderr",
    "how"}``) replaces :func:`actual_value` (a study of another noise estimate)."""
    actual = actual if actual is not None else actual_value(history, series)
    last = float(series.steps[-1])
    if (schedule is not None and schedule.end is not None and last > schedule.end
            and schedule.continue_lr is None):
        schedule = schedule.with_continuation("constant")  # the history went on past its plan
    rows = []
    for q in cuts:
        m = series.steps <= q * last
        if not m.any():  # the first held-out point comes after this cut: nothing to fit
            rows.append({"cut": float(q), "cut_step": None, "n_points": 0, "forecast": None,
                         "ci95": [None, None], "error": None, "covered": None,
                         "width": None, "interval_score": None,
                         "reason": "no point at or before the cut", "weights": {},
                         "ci95_raw": None, "recalibration": None})
            continue
        f = _forecast(history, series, m, schedule, last, actual["stderr"], n_boot, seed,
                      recalibrate)
        row = {"cut": float(q), "cut_step": float(series.steps[m][-1]) if m.any() else None,
               "n_points": int(m.sum()), "forecast": f["value"], "ci95": f["ci95"],
               "error": None, "covered": None, "width": None, "interval_score": None,
               "reason": f["reason"], "weights": _weights(f),
               "ci95_raw": f.get("ci95_raw"), "recalibration": f.get("recalibration")}
        if f["ok"] and None not in f["ci95"]:
            row["error"] = f["value"] - actual["value"]
            row["covered"] = bool(f["ci95"][0] <= actual["value"] <= f["ci95"][1])
            row["width"] = f["ci95"][1] - f["ci95"][0]
            row["interval_score"] = interval_score(*f["ci95"], actual["value"], LEVEL)
        rows.append(row)
    done = [r for r in rows if r["covered"] is not None]

    def mean(key):
        return float(np.mean([r[key] for r in done])) if done else None

    return {"series_kind": series.kind, "metric": series.metric,
            "higher_is_better": series.higher_is_better, "target_step": last, "actual": actual,
            "rows": rows,
            "mean_abs_error": float(np.mean([abs(r["error"]) for r in done])) if done else None,
            "coverage": float(np.mean([r["covered"] for r in done])) if done else None,
            "mean_width": mean("width"), "mean_interval_score": mean("interval_score"),
            "level": LEVEL, "n_forecast": len(done), "n_boot": int(n_boot), "seed": int(seed),
            "schedule": schedule.to_dict() if schedule is not None else None,
            "interval_for": "one measured point (curve uncertainty + the actual's noise)"}
