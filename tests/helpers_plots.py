"""Synthetic training histories and analyses for the plotting tests (no real training needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _acc_curve(steps: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A saturating learning curve in accuracy units, with batch noise, clipped to [0, 1]."""
    t = steps / 1000.0
    clean = 0.68 - 0.55 * np.exp(-((t / 25.0) ** 0.8))
    return np.clip(clean + rng.normal(0, noise, steps.size), 0, 1)


def _lr(steps: np.ndarray, peak: float = 5e-4) -> np.ndarray:
    """Linear warm-up over the first 5% then cosine decay, like the original schedule."""
    total, warm = steps.max(), 0.05 * steps.max()
    cos = 0.5 * (1 + np.cos(np.pi * np.clip((steps - warm) / (total - warm), 0, 1)))
    return np.where(steps < warm, peak * steps / warm, peak * cos)


def original_history(n: int = 1000, seed: int = 0, total: int = 100_000) -> dict:
    """The original study's format: steps/mlm_acc/nsp_acc/loss/lr, ``n`` points up to ``total``."""
    rng = np.random.default_rng(seed)
    steps = np.linspace(total / n, total, n).round().astype(int)
    acc = _acc_curve(steps, rng, 0.03)
    loss = 2.9 + 6.0 * (steps / 100.0) ** -0.35 + rng.normal(0, 0.08, n)
    nsp = np.clip(0.5 + 0.45 * (1 - np.exp(-steps / 8000)) + rng.normal(0, 0.03, n), 0, 1)
    return {"steps": steps.tolist(), "mlm_acc": acc.tolist(), "nsp_acc": nsp.tolist(),
            "loss": loss.tolist(), "lr": _lr(steps.astype(float)).tolist()}


def zhbert_history(n: int = 300, seed: int = 1, total: int = 30_000, n_eval: int = 15,
                   with_eval: bool = True) -> dict:
    """This project's format: train columns, throughput, optional eval_* series and meta."""
    rng = np.random.default_rng(seed)
    steps = np.linspace(total / n, total, n).round().astype(int)
    acc = _acc_curve(steps * 3, rng, 0.025)
    loss = 3.2 + 5.5 * (steps / 50.0) ** -0.4 + rng.normal(0, 0.06, n)
    out = {"steps": steps.tolist(), "mlm_acc": acc.tolist(), "loss": loss.tolist(),
           "lr": _lr(steps.astype(float), 1e-4).tolist(),
           "tokens_seen": (steps * 4096).tolist(),
           "elapsed_s": (steps * 0.2).tolist(),
           "tokens_per_s": (20000 + rng.normal(0, 300, n)).tolist(),
           "grad_norm": (1 + rng.random(n)).tolist(),
           "meta": {"run_name": "synthetic", "seed": seed}}
    if with_eval:
        es = np.linspace(total / n_eval, total, n_eval).round().astype(int)
        eacc = _acc_curve(es * 3, rng, 0.004)
        out.update(eval_steps=es.tolist(), eval_mlm_acc=eacc.tolist(),
                   eval_loss=(3.3 + 5.5 * (es / 50.0) ** -0.4).tolist(),
                   eval_stderr=np.full(n_eval, 0.004).tolist())
    return out


def write_history(directory: Path, name: str, data: dict) -> Path:
    """Write ``data`` as ``directory/name`` and return the path."""
    path = Path(directory) / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def fake_analysis(steps, acc) -> dict:
    """A hand-made analysis dict with the contract's keys (values plausible, not computed)."""
    steps = np.asarray(steps, float)
    lo, hi = float(steps.min()), float(steps.max())
    target = int(hi * 2)
    band_steps = np.linspace(hi, target, 20)
    value = 0.68 - 0.55 * np.exp(-((band_steps / 25000.0) ** 0.8))
    quarters = np.linspace(lo, hi, 5)
    return {
        "series": {"kind": "train", "n": int(steps.size)},
        "r_squared": 0.62,
        "pearson": {"r": 0.79, "p_value": 1e-200, "ci95": [0.76, 0.81]},
        "spearman": {"rho": 0.9, "p_value": 0.0}, "kendall": {"tau": 0.7, "p_value": 1e-150},
        "trend": {"modified_mann_kendall": {"p_value": 1e-5},
                  "residuals": {"durbin_watson": 0.4, "lag1_autocorr": 0.8, "ljung_box_p": 0.0}},
        "curve_fits": {
            "linear": {"params": {"a": 0.4, "b": 0.003, "t_scale": 1000.0}, "rmse": 0.06,
                       "aic": -10, "bic": -9, "tail_rmse": 0.1, "asymptote": None,
                       "converged": True},
            "weibull": {"params": {"a": 0.68, "d": 0.13, "lam": 25.0, "k": 0.8, "t_scale": 1000.0},
                        "rmse": 0.03, "aic": -20, "bic": -19, "tail_rmse": 0.03,
                        "asymptote": 0.68, "converged": True},
        },
        "loss_fit": {"family": "loss_power_law",
                     "params": {"E": 2.9, "A": 6.0, "alpha": 0.35, "t_scale": 100.0}},
        "best_fit": {"family": "weibull", "asymptote": 0.68, "criterion": "tail_rmse"},
        "extrapolation": {"target_step": target, "value": float(value[-1]),
                          "ci95": [float(value[-1]) - 0.02, float(value[-1]) + 0.02],
                          "band": {"steps": band_steps.tolist(), "value": value.tolist(),
                                   "low": (value - 0.02).tolist(),
                                   "high": (value + 0.02).tolist()}},
        "phases": {"quarters": [{"start_step": float(a), "end_step": float(b), "mean_acc": 0.5,
                                 "gain": 0.1, "gain_per_1k": 0.01}
                                for a, b in zip(quarters[:-1], quarters[1:], strict=True)],
                   "change_points": [{"step": float(lo + 0.3 * (hi - lo))}],
                   "lr_events": [{"step": float(lo + 0.05 * (hi - lo)), "event": "warm-up end"}]},
    }


def downstream_record(steps=(0, 600, 1200, 1800, 2400, 3000), tasks=("ner", "sentiment"),
                      seeds=(0, 1, 2)) -> dict:
    """A ``downstream_scores.json`` (zhbert/downstream_schema.py) whose test scores saturate with
    the step; step 0 is the random init. The seeds' spread is small and fixed, so every
    pretrained step's worst seed beats the best random-init seed."""
    records = []
    for k, task in enumerate(tasks):
        for step in steps:
            for seed in seeds:
                score = 0.55 + 0.08 * k + 0.15 * (1 - np.exp(-step / 800)) + 0.004 * (seed - 1)
                records.append({"task": task, "step": int(step), "seed": int(seed),
                                "init": "random" if step == 0 else "pretrained",
                                "split": "test", "metric": "entity_f1", "score": float(score),
                                "dev_score": float(score) + 0.01, "budget": "study",
                                "checkpoint": f"runs/x/checkpoints/step_{step}"})
    return {"format_version": 1, "records": records}
