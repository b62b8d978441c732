"""Is a series ready to forecast? The checks ``zhbert.analysis.forecast.forecast_final`` makes
before it fits anything: enough points, off the unigram plateau, and whether the curve is still
accelerating (forecast then, but flagged; the trainer's live forecast refuses it).
"""

from __future__ import annotations

import math

import numpy as np

#: points needed without a schedule, and with one (the lr areas carry the curve's time axis; the
#: two-parameter log-linear family needs two residual degrees of freedom, so 4 is the least)
MIN_POINTS = 5
MIN_POINTS_SCHEDULE = 4


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and its standard error."""
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if len(x) < 3 or sxx <= 0:
        return 0.0, math.inf
    b = float(xc @ (y - y.mean())) / sxx
    resid = y - y.mean() - b * xc
    return b, math.sqrt(float(resid @ resid) / (len(x) - 2) / sxx)


#: a series must average at least this multiple of the unigram baseline (its last third) to be
#: forecast: below it the model has learned little beyond the most frequent character
PLATEAU_MARGIN = 1.25


def accelerating(x: np.ndarray, y: np.ndarray) -> bool:
    """The slope over the last third of the points exceeds the middle third's by more than two
    standard errors: the curve has not passed its inflection (e.g. still leaving a plateau), so
    no saturating-curve forecast is meaningful yet."""
    n = len(y)
    if n < 9:
        return False
    a, b = n // 3, 2 * n // 3
    (s_mid, e_mid), (s_end, e_end) = _slope(x[a:b], y[a:b]), _slope(x[b:], y[b:])
    return s_end - s_mid > 2 * math.hypot(e_mid, e_end)


def too_early(acc: np.ndarray, floor: float | None, scheduled: bool) -> str | None:
    """Why the series is not forecast before any fit (None: it is): fewer than ``MIN_POINTS``
    points (``MIN_POINTS_SCHEDULE`` with a known schedule), or its last third still under
    ``PLATEAU_MARGIN`` x the unigram ``floor``."""
    need = MIN_POINTS_SCHEDULE if scheduled else MIN_POINTS
    if len(acc) < need:
        how = ("" if scheduled else f"; with the lr schedule known (an lr column or the run's "
               f"config) {MIN_POINTS_SCHEDULE} are enough")
        many = "point" if len(acc) == 1 else "points"
        return f"only {len(acc)} {many} (at least {need} are needed{how})"
    level = float(np.mean(acc[2 * len(acc) // 3:]))
    if floor is not None and floor > 0 and level < PLATEAU_MARGIN * floor:
        return (f"the curve has not left the unigram plateau yet (its last third of "
                f"points averages {level:.2%}, under {PLATEAU_MARGIN:g} x the unigram "
                f"baseline {floor:.2%}): too early for a forecast")
    return None


ACCELERATING = ("the curve is still accelerating (its slope over the last third of the points "
                "exceeds the middle third's): too early for a forecast")
#: said (not refused) when an accelerating curve is forecast
ACCELERATING_NOTE = ("the curve is still accelerating (its slope over the last third of the "
                     "points exceeds the middle third's): where its rise ends cannot be read "
                     "from these points, so the forecast may fall short (a history of this "
                     "project gets its class's recalibrated interval: zhbert.analysis.recalibrate)")
