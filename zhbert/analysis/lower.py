"""Lower-is-better series (loss, perplexity): the parts of the analysis that differ from accuracy's.

* the descriptive curve fits use :data:`LOWER_FAMILIES` (a line, a line in log-steps and the
  loss power law ``E + A t^-alpha``), not the saturating accuracy families;
* the forecast is the loss forecaster's, ``zhbert.analysis.loss_forecast.forecast_loss``
  (schedule-aware families), imported when first needed; when that module is not installed the
  forecast says so (``ok`` False, :data:`NOT_AVAILABLE`) and everything else still runs;
* a perplexity (:func:`is_perplexity`) is the exponential of a loss: its forecast is the loss
  forecaster's on its logarithm, exponentiated (the laws and their prior are laws of a loss in
  nats; an interval's quantiles map through the monotone exp unchanged).

:func:`metric_block` (the ``metric`` block of the analysis JSON) serves both directions.
"""

from __future__ import annotations

import importlib

import numpy as np

from zhbert.analysis.correlation import describe
from zhbert.analysis.history import Series
from zhbert.analysis.sources import is_perplexity

LOWER_FAMILIES = ("linear", "log_linear", "loss_power_law")
LOSS_FORECAST_MODULE = "zhbert.analysis.loss_forecast"
NOT_AVAILABLE = f"not available ({LOSS_FORECAST_MODULE} missing)"


def metric_block(s: Series) -> dict:
    """What was analysed and its best point in the metric's direction.

    >>> b = metric_block(Series("eval", np.array([1., 2, 3]), np.array([3., 2, 2.5]), "loss", False))
    >>> b["direction"], b["best"], b["best_step"], b["final"]
    ('min', 2.0, 2.0, 2.5)
    """
    i = s.best_index
    return {"name": s.metric, "higher_is_better": s.higher_is_better,
            "direction": "max" if s.higher_is_better else "min", "kind": s.kind, "n": s.n,
            "stats": describe(s.acc), "best": float(s.acc[i]), "best_step": float(s.steps[i]),
            "final": float(s.acc[-1])}


def _exp_back(result: dict) -> dict:
    """A forecast of log(perplexity) as a forecast of perplexity (``transform`` "log")."""
    out = dict(result, transform="log")
    for key in ("value", "lower", "upper"):
        if out.get(key) is not None:
            out[key] = float(np.exp(out[key]))
    if out.get("band"):
        out["band"] = {k: (v if k == "steps" else np.exp(v).tolist())
                       for k, v in out["band"].items()}
    return out


def forecaster():
    """``forecast_loss`` of :data:`LOSS_FORECAST_MODULE`, or None when the module is missing."""
    try:
        module = importlib.import_module(LOSS_FORECAST_MODULE)
    except ModuleNotFoundError as e:
        if e.name != LOSS_FORECAST_MODULE:  # the module is there but one of its imports is not
            raise
        return None
    return module.forecast_loss


def forecast_lower(steps, values, schedule, target_step: float, *, target_source: str = "given",
                   noise_sd: float | None = None, n_boot: int = 200, seed: int = 0,
                   metric: str | None = None) -> dict:
    """The ``extrapolation`` block of a lower-is-better series: the loss forecaster's result
    (``value``, ``lower``, ``upper``, ``family``, ...) with the keys the report, the figures and
    the backtest read (``ci95`` = [lower, upper], ``target_source``, ``time_axis``,
    ``schedule``, ``interval_for``); ``ok`` False with :data:`NOT_AVAILABLE` without the module.
    Points at step 0 or before are left out (as for accuracy). A ``metric`` named like a
    perplexity (all values above 0) is forecast on its logarithm (``transform`` "log")."""
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    keep = steps > 0
    steps, values = steps[keep], values[keep]
    out = {"ok": False, "reason": None, "target_step": float(target_step),
           "target_source": target_source, "value": None, "ci95": [None, None],
           "n_points": int(steps.size), "family": None, "families": {},
           "higher_is_better": False, "method": LOSS_FORECAST_MODULE,
           "time_axis": "lr_area" if schedule is not None else "steps",
           "schedule": schedule.to_dict() if schedule is not None else None,
           "interval_for": "one measured point" if noise_sd else "curve",
           "measurement_sd": noise_sd, "n_boot": int(n_boot), "seed": int(seed), "band": None}
    forecast = forecaster()
    if forecast is None:
        out["reason"] = NOT_AVAILABLE
        return out
    log = is_perplexity(metric) and values.size > 0 and bool(np.all(values > 0))
    if log:  # a measurement sd of the perplexity is, to first order, sd / value in log units
        noise_sd = noise_sd / float(values[-1]) if noise_sd else noise_sd
        values = np.log(values)
    result = forecast(steps, values, schedule, float(target_step), noise_sd=noise_sd,
                      n_boot=n_boot, seed=seed)
    out.update(_exp_back(result) if log else result)
    out["ci95"] = [out.get("lower"), out.get("upper")]
    out["families"] = out.get("families") or {}
    return out
