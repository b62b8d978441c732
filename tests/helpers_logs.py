"""Logs of other tools for tests/test_sources*.py, written by the real writers where they are
installed (transformers' ``TrainerState.save_to_json``, torch's ``SummaryWriter``); the CSV kinds by
the csv module in the layouts those tools write. Every curve is small (30 points)."""

from __future__ import annotations

import csv

import numpy as np

TOTAL, WARMUP, PEAK = 300, 30, 5e-4


def hf_lr(step: np.ndarray) -> np.ndarray:
    """Hugging Face's default schedule: linear warmup, then linear decay to 0 at TOTAL."""
    return PEAK * np.where(step < WARMUP, step / WARMUP, (TOTAL - step) / (TOTAL - WARMUP))


def acc_curve(step, seed=0):
    """A saturating accuracy curve with a little noise."""
    rng = np.random.default_rng(seed)
    return 0.7 - 0.6 * np.exp(-step / 80.0) + rng.normal(0, 0.004, step.size)


def loss_curve(step, seed=1):
    """A power-law loss curve with a little noise."""
    rng = np.random.default_rng(seed)
    return 2.0 + 3.0 * (step / 10.0) ** -0.5 + rng.normal(0, 0.01, step.size)


#: the logged steps and the curves every fixture writes
STEPS = np.arange(10, TOTAL + 1, 10)
ACC, LOSS, EVAL_LOSS, LR = acc_curve(STEPS), loss_curve(STEPS), loss_curve(STEPS, 2), hf_lr(STEPS)


def write_trainer_state(path):
    """A trainer_state.json written by transformers: train entries every 10 steps, eval entries
    (loss, accuracy, runtime) every 10 steps, and the closing summary entry."""
    from transformers.trainer_callback import TrainerState

    state = TrainerState(max_steps=TOTAL, logging_steps=10, eval_steps=10, global_step=TOTAL)
    for i, step in enumerate(STEPS.tolist()):
        state.log_history.append({"loss": float(LOSS[i]), "grad_norm": 1.0, "learning_rate": LR[i],
                                  "epoch": step / 100, "step": step})
        state.log_history.append({"eval_loss": EVAL_LOSS[i], "eval_accuracy": ACC[i],
                                  "eval_runtime": 1.5, "eval_samples_per_second": 80.0,
                                  "epoch": step / 100, "step": step})
    state.log_history.append({"train_runtime": 99.0, "train_loss": 2.5, "epoch": 3.0,
                              "step": TOTAL})
    state.save_to_json(str(path))
    return path


def write_tensorboard(run):
    """A run directory written by torch's SummaryWriter: train loss and lr, eval loss and
    accuracy."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run)) as w:
        for i, step in enumerate(STEPS.tolist()):
            w.add_scalar("train/loss", LOSS[i], step)
            w.add_scalar("train/learning_rate", LR[i], step)
            w.add_scalar("eval/loss", EVAL_LOSS[i], step)
            w.add_scalar("eval/accuracy", ACC[i], step)
    return run


def write_csv(path, header, rows):
    """A CSV file of a header and rows (the csv module, as the tools write theirs)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
