"""The candidate families of the accuracy forecast (:mod:`zhbert.analysis.forecast`).

* every ``zhbert.analysis.curves.FAMILIES`` entry marked ``forecast`` on the lr-area row of the
  design, and the same on the step row (``*_steps``; only with a schedule);
* ``DESIGN_FAMILIES``, on the whole design: ``power_law_anneal`` a - b x^-c + C z (Tissue et al.
  2024), used only when C is identifiable and the data's annealing area is at least
  1/:data:`ANNEAL_REACH` of the target's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from zhbert.analysis.curves import (
    FAMILIES,
    Family,
    accuracy_cap,
    power_law_basis,
    power_law_grid,
    power_law_valid,
)
from zhbert.analysis.refit import Refit

#: the annealing term is used only when the target's annealing area is at most this many times
#: the largest one in the data
ANNEAL_REACH = 4.0


@dataclass(frozen=True)
class Candidate:
    """A forecast family: ``family`` evaluated on the (3, n) :func:`design`, and its checks.

    * ``needs_schedule``: a candidate only when the schedule is known (without one the lr-area
      and step rows of the design are the same);
    * ``supported(X, X_at)``: whether the data support a forecast at ``X_at`` (None: always);
    * ``unidentified(fam, X, y, popt)``: why a converged fit cannot be used although no
      parameter is at a bound (a string), None when it can (None: always usable).
    """

    family: Family
    needs_schedule: bool = False
    supported: Callable | None = None
    unidentified: Callable | None = None


def _on_row(base: Family, row: int, suffix: str) -> Family:
    """``base`` on row ``row`` of the (3, n) design (x, z, steps): its curve, start values and
    refit basis read that row; named ``base.name + suffix``."""
    if base.start is None or base.refit is None:
        raise NotImplementedError(f"forecast family {base.name!r} needs start values and refit "
                                  "parts (zhbert.analysis.curves.Family.start, .refit)")
    parts = base.refit
    return replace(base, name=base.name + suffix, func=lambda X, *p: base.func(X[row], *p),
                   start=lambda X, y: base.start(X[row], y),
                   refit=replace(parts, basis=lambda X, grid: parts.basis(X[row], grid)))


# -- power_law_anneal a - b x^-c + C z (Tissue et al. 2024) ---------------------------------------

def _anneal(X, a, b, c, C):  # noqa: N803 - C as in Tissue et al.
    return a - b * X[0] ** (-c) + C * X[1]


def _anneal_start(X: np.ndarray, y: np.ndarray):
    """Grid over c, least squares for (a, b, C) at each: starting values and bounds."""
    best = None
    for c in np.geomspace(0.01, 3.0, 32):
        design = np.column_stack([np.ones_like(y), -X[0] ** (-c), X[1]])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        rss = float(np.sum((design @ coef - y) ** 2))
        if best is None or rss < best[0]:
            best = (rss, [coef[0], max(coef[1], 1e-6), c, max(coef[2], 1e-9)])
    return best[1], ([-np.inf, 0.0, 1e-4, 0.0], [accuracy_cap(y), np.inf, 10.0, np.inf])


def _anneal_basis(X: np.ndarray, grid: list[np.ndarray]) -> np.ndarray:
    """The power law's basis (1, x^-c) on the lr-area row, and the annealing area z."""
    pl = power_law_basis(X[0], grid)
    return np.concatenate([pl, np.broadcast_to(X[1], (pl.shape[0], 1, X.shape[1]))], axis=1)


def _anneal_valid(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The power law's bounds, and C >= 0."""
    return power_law_valid(coef, lo, hi) & (coef[:, 2] >= 0)


def _rel_se_ok(fam: Family, X: np.ndarray, y: np.ndarray, popt: np.ndarray, i: int) -> bool:
    """Parameter ``i`` is at least twice its standard error (numerical Jacobian, Gauss-Newton)."""
    f0 = fam.func(X, *popt)
    jac = np.empty((len(y), len(popt)))
    for j, p in enumerate(popt):
        h = 1e-6 * max(abs(p), 1e-6)
        q = popt.copy()
        q[j] = p + h
        jac[:, j] = (fam.func(X, *q) - f0) / h
    dof = max(1, len(y) - len(popt))
    s2 = float(np.sum((y - f0) ** 2)) / dof
    try:
        cov = np.linalg.pinv(jac.T @ jac) * s2
    except np.linalg.LinAlgError:
        return False
    se = math.sqrt(max(cov[i, i], 0.0))
    return se > 0 and popt[i] >= 2 * se


def _anneal_unidentified(fam: Family, X: np.ndarray, y: np.ndarray, popt: np.ndarray,
                         ) -> str | None:
    """The annealing term needs a varying annealing area and C at least twice its standard
    error."""
    if np.ptp(X[1]) > 0 and _rel_se_ok(fam, X, y, popt, 3):
        return None
    return "annealing term not identifiable (C < 2 standard errors)"


def anneal_supported(X: np.ndarray, X_at: np.ndarray) -> bool:
    """The annealing area seen in the data is at least 1/ANNEAL_REACH of the target's: beyond
    that the term's forecast is an extrapolation of a barely observed effect."""
    return bool(np.max(X[1]) > 0 and np.max(X[1]) * ANNEAL_REACH >= X_at[1, 0])


#: forecast families defined on the whole design rather than on one time axis
DESIGN_FAMILIES = (
    Candidate(Family("power_law_anneal", _anneal, ("a", "b", "c", "C"), "a", start=_anneal_start,
                     refit=Refit(power_law_grid, _anneal_basis, _anneal_valid)),
              supported=anneal_supported, unidentified=_anneal_unidentified),
)


def forecast_families() -> dict[str, Candidate]:
    """The candidates by name, in order: every ``forecast`` family of ``FAMILIES`` in lr area,
    the same in steps (``*_steps``; only with a schedule), then ``DESIGN_FAMILIES``.

    >>> print(*forecast_families())
    log_linear power_law weibull log_linear_steps power_law_steps weibull_steps power_law_anneal
    """
    base = [fam for fam in FAMILIES.values() if fam.forecast]
    return {c.family.name: c for c in (
        *(Candidate(_on_row(fam, 0, "")) for fam in base),
        *(Candidate(_on_row(fam, 2, "_steps"), needs_schedule=True) for fam in base),
        *DESIGN_FAMILIES)}
