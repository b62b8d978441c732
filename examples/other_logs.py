#!/usr/bin/env python
"""Write a run's history as other tools' logs, to try the analysis on the formats users have.

    python examples/other_logs.py --history results/training_history.json --out-dir runs/logs

Each file is written by the tool's own writer where it is installed: ``trainer_state.json`` by
transformers' ``TrainerState.save_to_json`` (train entries ``loss``, ``learning_rate``; eval
entries ``eval_loss``, ``eval_accuracy``), ``tensorboard/`` by torch's ``SummaryWriter`` (tags
``train/loss``, ``train/learning_rate``, ``eval/loss``, ``eval/accuracy``, as the Trainer's
TensorBoard callback names them); ``wandb_export.csv`` in the layout of a W&B panel export
(``Step``, ``<run> - eval/loss`` and its ``__MIN``/``__MAX``) and ``metrics.csv`` in Lightning's
CSVLogger layout (a row per logging call, empty cells for the metrics it did not log). Every
value is the history's own; nothing is made up. Prints the written paths as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zhbert import history_schema as H
from zhbert.analysis import load_history
from zhbert.errors import UserError, run_cli

RUN_NAME = "demo"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history", required=True, type=Path,
                   help="this project's training_history.json with a held-out series")
    p.add_argument("--out-dir", required=True, type=Path, help="folder for the logs")
    return p.parse_args(argv)


def _columns(history) -> dict[str, np.ndarray]:
    """The train and held-out columns the logs carry."""
    t, e = history.train, history.eval
    if e is None or not len(e):
        raise UserError(f"{history.path}: no held-out series to write (eval_steps, eval_mlm_acc)")
    return {"steps": t[H.STEPS].to_numpy(), "loss": t[H.LOSS].to_numpy(),
            "lr": t[H.LR].to_numpy(), "eval_steps": e[H.EVAL_STEPS].to_numpy(),
            "eval_loss": e[H.EVAL_LOSS].to_numpy(), "eval_acc": e[H.EVAL_MLM_ACC].to_numpy()}


def write_trainer_state(c: dict, path: Path) -> Path:
    """A Hugging Face Trainer state: train and eval entries in step order."""
    from transformers.trainer_callback import TrainerState

    last = int(c["steps"][-1])
    state = TrainerState(global_step=last, max_steps=last)
    entries = [(int(s), 0, {"loss": float(v), "learning_rate": float(lr)})
               for s, v, lr in zip(c["steps"], c["loss"], c["lr"], strict=True)]
    entries += [(int(s), 1, {"eval_loss": float(v), "eval_accuracy": float(a)})
                for s, v, a in zip(c["eval_steps"], c["eval_loss"], c["eval_acc"], strict=True)]
    state.log_history = [{**values, "step": step} for step, _, values in sorted(entries,
                                                                                key=lambda x: x[:2])]
    state.save_to_json(str(path))
    return path


def write_tensorboard(c: dict, folder: Path) -> Path:
    """A TensorBoard run directory."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as w:
        for s, v, lr in zip(c["steps"], c["loss"], c["lr"], strict=True):
            w.add_scalar("train/loss", float(v), int(s))
            w.add_scalar("train/learning_rate", float(lr), int(s))
        for s, v, a in zip(c["eval_steps"], c["eval_loss"], c["eval_acc"], strict=True):
            w.add_scalar("eval/loss", float(v), int(s))
            w.add_scalar("eval/accuracy", float(a), int(s))
    return folder


def _write_rows(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_wandb(c: dict, path: Path) -> Path:
    """A W&B panel export of the held-out loss (its band columns hold the value itself: one run)."""
    name = f"{RUN_NAME} - eval/loss"
    return _write_rows(path, ["Step", name, f"{name}__MIN", f"{name}__MAX"],
                       [[int(s), v, v, v] for s, v in zip(c["eval_steps"], c["eval_loss"],
                                                          strict=True)])


def write_lightning(c: dict, path: Path) -> Path:
    """A Lightning ``metrics.csv``: a train row per log point, a val row per evaluation (epoch
    0: the history does not count epochs)."""
    rows = [(int(s), 0, [0, int(s), float(v), "", "", float(lr)])
            for s, v, lr in zip(c["steps"], c["loss"], c["lr"], strict=True)]
    rows += [(int(s), 1, [0, int(s), "", float(v), float(a), ""])
             for s, v, a in zip(c["eval_steps"], c["eval_loss"], c["eval_acc"], strict=True)]
    return _write_rows(path, ["epoch", "step", "train_loss", "val_loss", "val_acc", "lr-AdamW"],
                       [r for _, _, r in sorted(rows, key=lambda x: x[:2])])


def main(argv: Sequence[str] | None = None) -> int:
    """Read the history, write the four logs, print their paths."""
    args = parse_args(argv)
    c = _columns(load_history(args.history))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    written = {"trainer_state": write_trainer_state(c, args.out_dir / "trainer_state.json"),
               "tensorboard": write_tensorboard(c, args.out_dir / "tensorboard"),
               "wandb": write_wandb(c, args.out_dir / "wandb_export.csv"),
               "lightning": write_lightning(c, args.out_dir / "metrics.csv")}
    print(json.dumps({k: str(v) for k, v in written.items()}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
