"""The live forecast: the analysis' forecast of the final held-out accuracy, made mid-run.

This is the trainer's only way into :mod:`zhbert.analysis` (scipy, pandas, statsmodels,
pymannkendall, ruptures). :class:`zhbert.training.monitor.Monitor` imports this module only when
``run.forecast`` is on, so a run without forecasts never loads the statistics stack.
"""

from __future__ import annotations

import numpy as np

from zhbert import history_schema as H
from zhbert.analysis.forecast import LIVE_N_BOOT, forecast_final
from zhbert.analysis.readiness import MIN_POINTS
from zhbert.analysis.recalibrate import apply, default_calibration, series_class
from zhbert.analysis.schedule import planned_schedule

#: held-out points needed before the first forecast (the analysis' own minimum; the live
#: bootstrap size is its ``LIVE_N_BOOT``: each resample refits every curve family)
MIN_FORECAST_POINTS = MIN_POINTS


def live_forecast(steps, acc, config: dict, seed: int = 0, time_budget: dict | None = None,
                  floor: float | None = None, meta: dict | None = None) -> dict | None:
    """Forecast of the held-out accuracy at the planned final step ``config["run"]["max_steps"]``
    (or the current plan of a time-budget run, ``time_budget`` = ``meta.time_budget``) from the
    held-out points so far (``config`` is a ``TrainConfig.to_dict()``; ``floor`` the unigram
    baseline, below whose plateau nothing is forecast).

    The schedule-aware, model-averaged forecast of :func:`zhbert.analysis.forecast.forecast_final`
    with its small live bootstrap. Returns ``{"step", "acc", "low", "high"}`` (95% interval of the
    expected accuracy) or None when it gives no value with an interval (too few points, a curve
    still on the unigram plateau or still accelerating, no family fitted). With the run's
    ``meta`` (its count-table baselines) the interval is recalibrated as the analysis does
    (:mod:`zhbert.analysis.recalibrate`): on the bigram plateau it widens.
    """
    steps, acc = np.asarray(steps, float), np.asarray(acc, float)
    ok = np.isfinite(acc) & (steps > 0)
    if ok.sum() < MIN_FORECAST_POINTS:
        return None
    schedule = planned_schedule({H.META_CONFIG: config, H.META_TIME_BUDGET: time_budget})
    target = schedule.end if schedule is not None and schedule.warp else int(
        config["run"]["max_steps"])
    if schedule is not None:  # the trainer holds the lr of the schedule's last step after it
        schedule = schedule.with_continuation("constant")
    fc = forecast_final(steps[ok], acc[ok], schedule, target, n_boot=LIVE_N_BOOT, seed=seed,
                        floor=floor, when_accelerating="refuse")
    if not fc["ok"] or None in fc["ci95"]:
        return None
    low, high = fc["ci95"]
    cls = series_class("accuracy", acc[ok], meta)
    r = apply("accuracy", fc["value"], low, high, cls, default_calibration()) if cls else None
    if r is not None:
        low, high = r["lower"], r["upper"]
    return {"step": target, "acc": fc["value"], "low": low, "high": high}
