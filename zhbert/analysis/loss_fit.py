"""Fitting the loss laws of ``zhbert.analysis.loss_laws``: many series at once, with priors.

Every law is linear in ``L0``, ``A`` (and ``C`` of Tissue's, ``B`` of the multi-power law) once
its exponent ``alpha`` and, for the multi-power law, its decay shape ``(C, beta, gamma)`` are
fixed. :func:`grid_solve` uses that (variable projection): for each ``alpha`` of a fine
log-spaced grid the linear coefficients of every series are solved in closed form (a ridge where a
coefficient has a Gaussian prior), and each series keeps its best admissible grid point, with a
Gaussian prior on ``log alpha`` added to its objective. Objective, per series::

    |y - M theta|^2 / sigma^2 + sum_j prec_j (theta_j - mu_j)^2 + ((log alpha - mu_a) / sd_a)^2

This is exact least squares (MAP) up to the grid's spacing, and it refits hundreds of bootstrap
series in one pass. :func:`fit_free` is the unrestricted nonlinear fit of one law (every
parameter free, no prior): what a user of a published law would do with one curve.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
from scipy.optimize import least_squares

from zhbert.analysis.loss_laws import LAWS, LossDesign, annealing_drop, to_fitted, to_natural
from zhbert.analysis.trend import lag1_autocorr

ALPHA_GRID = np.geomspace(0.02, 2.5, 260)
#: generic start of a free multi-power fit's decay part (B, C, beta, gamma), lr/peak units
MPL_START = (0.15, 2.0, 0.6, 0.6)


class Basis:
    """The linear basis of ``law`` as a function of ``alpha``: (1, x^-alpha[, extra]).

    ``x`` is S1 (steps for ``power_law_steps``; ``"power"`` is the power part alone, in S1);
    ``extra`` is ``-S2`` for Tissue's law and the multi-power law's drop with B = 1 under
    ``shape`` = (C, beta, gamma). ``basis(alpha)`` is ``(len(alpha), n, k)``; ``basis.grid``
    the same on :data:`ALPHA_GRID`, computed once.
    """

    def __init__(self, law: str, d: LossDesign, shape=None):
        self.x = np.maximum(d.t if law == "power_law_steps" else d.s1, 1e-12)
        self.extra = (-d.s2 if law == "tissue_s1s2" else
                      -annealing_drop([1.0, *shape], d) if law == "multi_power" else None)
        self.avg = d.avg
        if self.extra is not None:
            self.extra = d.avg(self.extra)
        self._power = None

    def with_shape(self, d: LossDesign, shape) -> Basis:
        """The multi-power basis under ``shape``, sharing this basis's power part (same ``d``)."""
        other = copy.copy(self)
        other.extra = d.avg(-annealing_drop([1.0, *shape], d))
        return other

    def _stack(self, pw: np.ndarray) -> np.ndarray:
        cols = [np.ones_like(pw), pw]
        if self.extra is not None:
            cols.append(np.broadcast_to(self.extra, pw.shape))
        return np.stack(cols, axis=-1)

    def __call__(self, alpha) -> np.ndarray:
        return self._stack(self.avg(self.x[None, :] ** (-np.asarray(alpha, np.float64)[:, None])))

    @property
    def grid(self) -> np.ndarray:
        """The basis on :data:`ALPHA_GRID` (its power part computed once)."""
        if self._power is None:
            self._power = self.avg(self.x[None, :] ** (-ALPHA_GRID[:, None]))
        return self._stack(self._power)


def columns(law: str, d: LossDesign, alpha: np.ndarray, shape=None) -> np.ndarray:
    """``Basis(law, d, shape)(alpha)``."""
    return Basis(law, d, shape)(alpha)


def _solve(M, Y, sigma2, mu, prec, paired: bool):  # noqa: N803
    """Ridge solutions and objectives: every basis of ``M`` (G, n, k) with every row of ``Y``
    (R, n) -> theta (G, k, R), objective (G, R); ``paired``: basis r with row r only -> (R, k),
    (R,)."""
    k = M.shape[-1]
    Mt = np.swapaxes(M, 1, 2)  # noqa: N806
    gram = Mt @ M
    my = Mt @ (Y[:, :, None] if paired else Y.T)  # (G, k, R) or (R, k, 1)
    mu_t = mu[:, :, None] if paired else mu.T[None]
    H = gram / sigma2 + np.diag(prec)[None]  # noqa: N806
    with np.errstate(all="ignore"):
        theta = np.linalg.solve(H + 1e-12 * np.eye(k)[None], my / sigma2 + prec[:, None] * mu_t)
        # |y - M theta|^2 = y'y - 2 theta'M'y + theta'M'M theta, without forming M theta
        yy = np.sum(Y * Y, axis=1)
        rss = ((yy[:, None] if paired else yy[None]) - 2 * np.sum(theta * my, axis=1)
               + np.sum(theta * (gram @ theta), axis=1))
        obj = np.maximum(rss, 0.0) / sigma2 + np.sum(prec[None, :, None] * (theta - mu_t) ** 2,
                                                     axis=1)
    if paired:
        return theta[:, :, 0], obj[:, 0]
    return theta, obj


def grid_solve(basis: Basis, Y: np.ndarray, sigma2: float, mu: np.ndarray | None = None,  # noqa: N803
               prec: np.ndarray | None = None, alpha_mu: np.ndarray | None = None,
               alpha_sd: float | None = None, positive=(1,)) -> dict:
    """Best ``alpha`` per series: ``{"alpha", "theta", "objective"}``, one row per series.

    ``Y`` (R, n) series, ``mu`` (R, k) prior means and ``prec`` (k,) prior precisions of the
    coefficients (0: flat), ``alpha_mu`` (R,) and ``alpha_sd`` the prior on ``log alpha``
    (None: flat). Solutions with a non-positive coefficient in ``positive`` are inadmissible.
    The best point of :data:`ALPHA_GRID` is refined by one parabolic step in ``log alpha``
    through it and its neighbours (kept when it improves the objective).

    >>> from zhbert.analysis.loss_laws import loss_design
    >>> t = np.linspace(1000, 10_000, 20)
    >>> out = grid_solve(Basis("power_law_steps", loss_design(t, None)),
    ...                  (2 + 3 * (t / 1000) ** -0.55)[None], 1.0)
    >>> round(float(out["alpha"][0]), 3), out["theta"][0].round(2).tolist()
    (0.55, [2.0, 3.0])
    """
    M = basis.grid  # noqa: N806
    k, R = M.shape[-1], Y.shape[0]  # noqa: N806
    prec = np.zeros(k) if prec is None else np.asarray(prec, np.float64)
    mu = np.zeros((R, k)) if mu is None else mu

    def penalised(theta, obj, log_alpha):
        if alpha_mu is not None and alpha_sd:
            obj = obj + ((log_alpha - alpha_mu) / alpha_sd) ** 2
        for j in positive:
            obj = np.where(theta[..., j] > 0, obj, np.inf)
        return np.where(np.isfinite(obj), obj, np.inf)

    theta, obj = _solve(M, Y, sigma2, mu, prec, paired=False)
    u = np.log(ALPHA_GRID)
    obj = penalised(np.swapaxes(theta, 1, 2), obj, u[:, None])
    g, r = np.argmin(obj, axis=0), np.arange(R)
    best_theta, best_obj = theta[g, :, r], obj[g, r]
    # one parabolic step in log alpha through the best grid point and its neighbours
    inner = (g > 0) & (g < u.size - 1)
    lo, mid, hi = obj[np.maximum(g - 1, 0), r], best_obj, obj[np.minimum(g + 1, u.size - 1), r]
    with np.errstate(all="ignore"):
        den = hi - 2 * mid + lo
        step = np.where(inner & np.isfinite(den) & (den > 0), 0.5 * (lo - hi) / den, 0.0)
    u_new = u[g] + np.clip(np.nan_to_num(step), -1.0, 1.0) * (u[1] - u[0])
    th2, ob2 = _solve(basis(np.exp(u_new)), Y, sigma2, mu, prec, paired=True)
    ob2 = penalised(th2, ob2, u_new)
    better = ob2 < best_obj
    return {"alpha": np.where(better, np.exp(u_new), ALPHA_GRID[g]),
            "theta": np.where(better[:, None], th2, best_theta),
            "objective": np.where(better, ob2, best_obj)}


def predict(basis_at: Basis, out: dict) -> np.ndarray:
    """``(R, m)`` predictions at ``basis_at``'s points of :func:`grid_solve`'s solutions."""
    return np.matmul(basis_at(out["alpha"]), out["theta"][:, :, None])[:, :, 0]


def start_values(law: str, d: LossDesign, y: np.ndarray) -> np.ndarray:
    """A start for :func:`fit_free`: the grid fit without priors (multi-power: its power part,
    decay part :data:`MPL_START`)."""
    base = "power_law_steps" if law == "power_law_steps" else (
        "tissue_s1s2" if law == "tissue_s1s2" else "power")
    out = grid_solve(Basis(base, d), y[None], 1.0)
    th, a = out["theta"][0], float(out["alpha"][0])
    if law == "multi_power":
        return np.array([th[0], th[1], a, *MPL_START])
    return np.array([th[0], th[1], a, *th[2:]])


def fit_free(law: str, d: LossDesign, y: np.ndarray, p0=None, max_nfev: int | None = None,
             ) -> np.ndarray | None:
    """Least-squares parameters of ``law`` on ``(d, y)``, every one free (positive ones in log
    space within the law's bounds); None when it fails. ``p0`` default :func:`start_values`."""
    lw = LAWS[law]
    p0 = start_values(law, d, y) if p0 is None else np.asarray(p0, np.float64)
    lo, hi = np.array(lw.lower), np.array(lw.upper)
    if law == "tissue_s1s2":  # Tissue's C may start at 0 (no annealing seen yet)
        p0 = p0.copy()
        p0[3] = max(p0[3], 1e-6)
    q0 = np.clip(to_fitted(lw, p0), lo + 1e-9, hi - 1e-9)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            res = least_squares(lambda q: lw.func(to_natural(lw, q), d) - y, q0, bounds=(lo, hi),
                                x_scale="jac", max_nfev=max_nfev)
        except (ValueError, np.linalg.LinAlgError):
            return None
    p = to_natural(lw, res.x)
    return p if np.all(np.isfinite(p)) and math.isfinite(res.cost) else None


#: with too few residual degrees of freedom the residual scale is at least this fraction of the
#: level (an exact fit says nothing about the noise)
REL_SD_FLOOR = 0.002
MIN_DOF = 4


def _prior_means(prior: dict, R: int, rng: np.random.Generator | None):  # noqa: N803
    """Prior means of the coefficients (R, 3) and of log alpha (R,), drawn when ``rng``."""
    b_mu, b_sd = prior["B"]
    a_mu, a_sd = prior["log_alpha"]
    zb, za = (rng.standard_normal(R), rng.standard_normal(R)) if rng is not None else (0.0, 0.0)
    mu = np.zeros((R, 3))
    mu[:, 2] = b_mu + b_sd * zb
    return mu, np.full(R, a_mu) + a_sd * za


class PriorModel:
    """The multi-power law (power law in steps without a schedule) with a calibrated prior:
    decay shape fixed, Gaussian priors on ``B`` and ``log alpha``; ``L0``, ``A`` free.

    ``fit(Y, rng)`` refits every row of ``Y`` (prior means redrawn when ``rng`` is given) and
    returns its predictions at ``d_at``; :meth:`point` sets the prior's weight first.
    """

    def __init__(self, d: LossDesign, d_at: LossDesign, prior: dict, scheduled: bool):
        self.law = "multi_power" if scheduled else "power_law_steps"
        self.basis = Basis(self.law, d, prior["shape"])
        self.basis_at = Basis(self.law, d_at, prior["shape"])
        self.k = 3 if scheduled else 2
        self.prec = np.zeros(self.k)
        self.prior, self.sigma2 = prior, 1.0
        if scheduled:
            self.prec[2] = 1.0 / prior["B"][1] ** 2
        self.n_params = 3 + (1 if scheduled and np.ptp(self.basis.extra) > 0 else 0)

    def fit(self, Y: np.ndarray, rng=None) -> tuple[np.ndarray, dict]:  # noqa: N803
        mu, amu = _prior_means(self.prior, Y.shape[0], rng)
        out = grid_solve(self.basis, Y, self.sigma2, mu[:, :self.k], self.prec, amu,
                         self.prior["log_alpha"][1])
        return predict(self.basis_at, out), out

    def refit(self, Y: np.ndarray, rng) -> np.ndarray:  # noqa: N803
        """Predictions of every row's refit, the prior means redrawn with ``rng``."""
        return self.fit(Y, rng)[0]

    def point(self, y: np.ndarray, noise: float | None) -> tuple[np.ndarray, dict]:
        """Fitted values and parameters; two passes, the prior's weight set from the first
        fit's residual variance inflated for AR(1) autocorrelation, ``(1 + rho) / (1 - rho)``."""
        floor = (REL_SD_FLOOR * abs(float(np.mean(y)))) ** 2
        self.sigma2 = max((noise or 0.0) ** 2, floor)
        for _ in range(2):
            _, out = self.fit(y[None])
            fitted = self.basis(out["alpha"][:1])[0] @ out["theta"][0]
            resid = y - fitted
            dof = max(y.size - self.n_params, 0)
            rho = min(max(lag1_autocorr(resid), 0.0), 0.95) if y.size > 2 else 0.0
            var = float(resid @ resid) / dof if dof else 0.0
            self.sigma2 = max(var * (1 + rho) / (1 - rho), floor if dof < MIN_DOF else 1e-30)
        th = out["theta"][0]
        params = {"L0": float(th[0]), "A": float(th[1]), "alpha": float(out["alpha"][0])}
        if th.size > 2:
            params["B"] = float(th[2])
        return fitted, params
