"""Synthetic histories with known answers, for tests, examples and benchmarks (no I/O)."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import least_squares

from zhbert import history_schema as H

#: the original study's published figures (analysis_100k_result.json)
ORIGINAL_TARGETS = {"r": 0.7869267513375451, "mean": 0.5052538213282823,
                    "max": 0.663484513759613, "min": 0.15161290764808655,
                    "std": 0.10480852619897836, "loss_initial": 8.95722484588623,
                    "loss_final": 2.972820520401001}


def ar1(n: int, rho: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    """AR(1) noise with marginal standard deviation ``sd``."""
    w = rng.normal(0.0, sd * math.sqrt(1 - rho**2), n)
    e = np.empty(n)
    e[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        e[i] = rho * e[i - 1] + w[i]
    return e


def warmup_cosine(steps: np.ndarray, peak: float = 1e-4, warmup_frac: float = 0.1) -> np.ndarray:
    """Linear warmup to ``peak`` then cosine decay to 0 at the last step."""
    last = steps[-1]
    w = warmup_frac * last
    return np.where(steps < w, peak * steps / w,
                    peak * 0.5 * (1 + np.cos(np.pi * (steps - w) / (last - w))))


def make_history(n: int = 1000, last_step: int = 100_000, a: float = 0.68, b: float = 0.5,
                 c: float = 0.45, noise: float = 0.01, rho: float = 0.5, seed: int = 0,
                 eval_every: int = 0) -> dict:
    """A saturating accuracy ``a - b t^-c`` (t in 1K steps) + AR(1) noise, loss and lr columns.

    With ``eval_every`` > 0 an eval series (less noisy, i.i.d.) is added every that many points.
    """
    rng = np.random.default_rng(seed)
    steps = np.linspace(last_step / n, last_step, n).round().astype(np.int64)
    ts = steps / 1000.0
    acc = np.clip(a - b * ts ** (-c) + ar1(n, rho, noise, rng), 0.0, 1.0)
    loss = 2.8 + 4.0 * ts ** (-0.5) + ar1(n, rho, 0.05, rng)
    hist = {H.STEPS: steps.tolist(), H.MLM_ACC: acc.tolist(), H.LOSS: loss.tolist(),
            H.LR: warmup_cosine(steps.astype(float)).tolist()}
    if eval_every:
        es = steps[eval_every - 1::eval_every]
        ev = np.clip(a - b * (es / 1000.0) ** (-c) + rng.normal(0, noise / 3, es.size), 0, 1)
        hist.update({H.EVAL_STEPS: es.tolist(), H.EVAL_MLM_ACC: ev.tolist(),
                     H.EVAL_LOSS: (2.8 + 4.0 * (es / 1000.0) ** (-0.5)).tolist(),
                     H.EVAL_STDERR: [noise / 3] * es.size, H.META_KEY: {"source": "synthetic"}})
    return hist


def scheduled_truth(steps: np.ndarray, schedule, shape: dict) -> np.ndarray:
    """Noise-free accuracy of a run under ``schedule`` (a ``zhbert.analysis.schedule.Schedule``).

    Deliberately NOT one of the forecast families: a loss law in the lr areas with a saturating
    annealing drop (in the spirit of Luo et al. 2025's multi-power law),
    ``L = L0 + A (S1 + s0)^-alpha - B (1 - (1 + S2 / s2)^-beta)``, mapped to accuracy by
    ``acc = top * exp(-gamma (L - L0))``. Areas are in units of the run's planned total area.
    """
    s1, s2 = schedule.areas(steps)
    ref = float(schedule.areas([schedule.total])[0][0])
    x, z = s1 / ref, s2 / ref
    loss_gap = (shape["A"] * (x + shape["s0"]) ** (-shape["alpha"])
                - shape["B"] * (1 - (1 + z / shape["s2"]) ** (-shape["beta"])))
    return shape["top"] * np.exp(-shape["gamma"] * np.maximum(loss_gap, 0.0))


def random_shape(rng: np.random.Generator) -> dict:
    """Random but plausible parameters for :func:`scheduled_truth`."""
    return {"A": 1.0, "s0": rng.uniform(0.005, 0.03), "alpha": rng.uniform(0.3, 0.7),
            "B": rng.uniform(0.0, 0.15), "s2": rng.uniform(0.05, 0.5),
            "beta": rng.uniform(0.5, 1.5), "top": rng.uniform(0.3, 0.9),
            "gamma": rng.uniform(0.1, 0.4)}


def make_scheduled_history(schedule, n: int = 1000, noise: float = 0.01, rho: float = 0.5,
                           seed: int = 0, eval_every: int = 0, eval_noise: float = 0.0035,
                           shape: dict | None = None) -> dict:
    """A history in this project's format whose true accuracy is :func:`scheduled_truth`.

    Training-batch accuracy gets AR(1) noise (sd ``noise``, lag-1 ``rho``); with ``eval_every``
    a held-out series (independent noise ``eval_noise``, recorded as ``eval_stderr``) is added.
    ``meta.truth`` holds the noise-free final accuracy and the shape; ``meta.config`` the schedule.
    """
    rng = np.random.default_rng(seed)
    shape = shape or random_shape(rng)
    total = int(schedule.total)
    steps = np.linspace(total / n, total, n).round().astype(np.int64)
    truth = scheduled_truth(steps, schedule, shape)
    acc = np.clip(truth + ar1(n, rho, noise, rng), 0.0, 1.0)
    hist = {H.STEPS: steps.tolist(), H.MLM_ACC: acc.tolist(),
            H.LOSS: (8.0 - 10.0 * truth + ar1(n, rho, 0.05, rng)).tolist(),
            H.LR: schedule.lr(steps).tolist()}
    if eval_every:
        es = steps[eval_every - 1::eval_every]
        ev = np.clip(scheduled_truth(es, schedule, shape) + rng.normal(0, eval_noise, es.size), 0, 1)
        hist.update({H.EVAL_STEPS: es.tolist(), H.EVAL_MLM_ACC: ev.tolist(),
                     H.EVAL_LOSS: (8.0 - 10.0 * ev).tolist(),
                     H.EVAL_STDERR: [eval_noise] * es.size})
    hist[H.META_KEY] = {"source": "synthetic", H.META_CONFIG: {
        "optim": {"lr": schedule.peak, "warmup_steps": schedule.warmup,
                  "schedule": schedule.kind, "total_steps": total}, "run": {"max_steps": total}},
        "truth": {"final_acc": float(truth[-1]), "shape": shape, "noise": noise, "rho": rho}}
    return hist


def make_original_like(seed: int = 0) -> dict:
    """1,000-point original-format history reproducing the published statistics.

    A saturating curve + AR(1) noise supplies the shape (chosen so that the result stays
    inside [min, max]); then the max and min are pinned at two points
    and the other 998 are mapped to ``alpha + beta*u + gamma*v`` (u: standardised step, v: the
    shape's component orthogonal to u) with alpha, beta, gamma solved so that mean, population
    std and Pearson r with the step match exactly. Loss: first and last values pinned.
    """
    tg = ORIGINAL_TARGETS
    rng = np.random.default_rng(seed)
    steps = np.arange(100, 100_001, 100, dtype=np.float64)
    shape = 0.66 - 0.5 * np.exp(-((steps / 20000) ** 1.3)) + ar1(steps.size, 0.3, 0.02, rng)
    i_max, i_min = int(np.argmax(shape)), int(np.argmin(shape))
    rest = np.setdiff1d(np.arange(steps.size), [i_max, i_min])
    u = (steps - steps.mean()) / steps.std()
    v = shape - shape.mean() - (shape @ u) / (u @ u) * u
    v = v / v.std()

    def build(p):
        y = np.empty(steps.size)
        y[rest] = p[0] + p[1] * u[rest] + p[2] * v[rest]
        y[i_max], y[i_min] = tg["max"], tg["min"]
        return y

    def resid(p):
        y = build(p)
        return [y.mean() - tg["mean"], y.std() - tg["std"], np.corrcoef(steps, y)[0, 1] - tg["r"]]

    cos = tg["r"]
    p0 = [tg["mean"], tg["std"] * cos, tg["std"] * math.sqrt(1 - cos**2)]
    acc = build(least_squares(resid, p0, xtol=1e-15, ftol=1e-15, gtol=1e-15).x)
    loss = 2.97 + 60.0 * steps ** (-0.45) + rng.normal(0, 0.05, steps.size)
    loss[0], loss[-1] = tg["loss_initial"], tg["loss_final"]
    nsp = np.clip(0.5 + 0.3 * (1 - np.exp(-steps / 20000)) + rng.normal(0, 0.02, steps.size), 0, 1)
    return {H.STEPS: steps.astype(int).tolist(), H.MLM_ACC: acc.tolist(), H.NSP_ACC: nsp.tolist(),
            H.LOSS: loss.tolist(), H.LR: warmup_cosine(steps).tolist()}


#: the range :func:`random_loss_shape` draws Tissue's annealing constant ``C`` from
LOSS_C_RANGE = (0.01, 0.04)


def random_loss_shape(rng: np.random.Generator) -> dict:
    """Random but plausible parameters of :func:`loss_truth` (areas in 1,000 peak-lr steps)."""
    return {"L0": rng.uniform(2.0, 4.0), "A": rng.uniform(0.5, 1.5),
            "alpha": rng.uniform(0.3, 0.7), "C": rng.uniform(*LOSS_C_RANGE)}


def loss_truth(steps: np.ndarray, schedule, shape: dict) -> np.ndarray:
    """Noise-free loss of Tissue et al. 2024's law ``L0 + A S1^-alpha - C S2`` under
    ``schedule`` (S1, S2 of ``zhbert.analysis.schedule``, in units of 1,000 peak-lr steps)."""
    s1, s2 = schedule.areas(np.asarray(steps, np.float64))
    return shape["L0"] + shape["A"] * (s1 / 1000.0) ** (-shape["alpha"]) - shape["C"] * s2 / 1000.0


def make_loss_curve(schedule, n: int = 200, noise: float = 0.01, rho: float = 0.5,
                    seed: int = 0, shape: dict | None = None,
                    c_range: tuple[float, float] | None = None) -> dict:
    """A training-loss curve ``{"steps", "loss", "lr", "truth", "truth_curve"}`` of
    :func:`loss_truth` with AR(1) noise (sd ``noise``, lag-1 ``rho``), ``n`` points up to
    ``schedule.end``; ``truth`` holds the noise-free final loss and the shape, ``truth_curve``
    the noise-free curve. ``c_range``: the random shape's ``C`` is moved to the same quantile
    of this range instead of :data:`LOSS_C_RANGE` (every other draw, the noise included, is
    the same as without it)."""
    if shape and c_range is not None:
        raise ValueError("give a shape or a c_range, not both (c_range moves a random shape's C)")
    rng = np.random.default_rng(seed)
    if not shape:
        shape = random_loss_shape(rng)
        if c_range is not None:
            lo, hi = LOSS_C_RANGE
            shape["C"] = c_range[0] + (shape["C"] - lo) / (hi - lo) * (c_range[1] - c_range[0])
    total = int(schedule.end)
    steps = np.linspace(total / n, total, n).round()
    truth = loss_truth(steps, schedule, shape)
    return {"steps": steps.tolist(), "loss": (truth + ar1(n, rho, noise, rng)).tolist(),
            "lr": np.asarray(schedule.lr(steps), np.float64).tolist(),
            "truth": {"final_loss": float(truth[-1]), "shape": shape},
            "truth_curve": truth.tolist()}
