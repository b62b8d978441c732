"""Refit a forecast family on many resampled series at once (variable projection on a grid).

Every forecast family is linear in some parameters once the others are fixed (e.g. ``power_law``
a - b x^-c is linear in a and b for a fixed c). The family says how (its :class:`Refit` parts,
``zhbert.analysis.curves.Family.refit``): a grid of the non-linear parameters around the original
fit, the basis of the linear ones at every grid point, and which solutions respect its bounds.
:func:`grid_refit` solves the linear parameters in closed form for every grid point and every
resample together; each resample keeps its least-squares grid point among the admissible ones.
That is a full least-squares refit restricted to the grid, much faster than polishing each
resample with ``curve_fit``, which keeps a forecast cheap enough to run inside training (issue:
live forecast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: log-spaced multiples of the original non-linear parameter that a grid spans (default)
SPAN = 1.2


@dataclass(frozen=True)
class Refit:
    """How a family is refitted by :func:`grid_refit`; ``lo``, ``hi`` are its bound arrays.

    * ``grid(popt, lo, hi)``: the non-linear parameters' grid around the fit ``popt``, one array
      per parameter (all of one length J); ``[]`` when the family is linear in every parameter;
    * ``basis(x, grid)``: the ``(J, p, n)`` basis of the p linear coefficients at the J grid
      points, on the family's input ``x`` (n points);
    * ``valid(coef, lo, hi)``: which ``(J, p, B)`` solutions respect the bounds, ``(J, B)``.
    """

    grid: Callable
    basis: Callable
    valid: Callable


def log_grid(value: float, lo: float, hi: float, n: int, span: float = SPAN) -> np.ndarray:
    """``n`` log-spaced multiples ``exp(-span) .. exp(span)`` of ``value``, clipped into [lo, hi]."""
    return np.clip(value * np.exp(np.linspace(-span, span, n)), lo, hi)


def no_grid(popt: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """The grid of a family that is linear in every parameter: none."""
    return []


def intercept_ok(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The first linear coefficient (the family's first parameter) lies within its bounds."""
    a = coef[:, 0]
    return (a <= hi[0]) & (a >= lo[0])


def grid_refit(parts: Refit, X: np.ndarray, Y: np.ndarray, popt: np.ndarray, bounds,
               X_at: np.ndarray) -> np.ndarray:
    """Predictions ``(B, m)`` at ``X_at`` of the family with refit ``parts``, fitted with
    ``popt`` within ``bounds`` on ``X``, refitted to each row of ``Y``.

    Rows with no admissible grid point are NaN.
    """
    lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    grid = parts.grid(np.asarray(popt, dtype=np.float64), lo, hi)
    G = parts.basis(X, grid)  # noqa: N806 - (J, p, n)
    G_at = parts.basis(X_at, grid)  # noqa: N806
    gram = np.einsum("jpn,jqn->jpq", G, G)
    rhs = np.einsum("jpn,bn->jpb", G, Y)
    with np.errstate(all="ignore"):
        try:
            coef = np.linalg.solve(gram, rhs)  # (J, p, B)
        except np.linalg.LinAlgError:
            coef = np.einsum("jpq,jqb->jpb", np.linalg.pinv(gram), rhs)
        rss = np.einsum("bn,bn->b", Y, Y)[None, :] - np.einsum("jpb,jpb->jb", coef, rhs)
    rss = np.where(parts.valid(coef, lo, hi) & np.isfinite(rss), rss, np.inf)
    best = np.argmin(rss, axis=0)  # (B,)
    cols = np.arange(Y.shape[0])
    pred = np.einsum("bp,bpm->bm", coef[best, :, cols], G_at[best])
    pred[~np.isfinite(rss[best, cols])] = np.nan
    return pred
