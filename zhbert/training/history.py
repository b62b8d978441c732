"""The run's JSON history (``RUN/training_history.json``), rewritten atomically at every log point.

Train columns all have ``len(steps)``, eval columns all have ``len(eval_steps)`` (contract).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhbert.errors import UserError
from zhbert.io_utils import atomic_write_json

TRAIN_KEYS = ("steps", "mlm_acc", "loss", "lr", "tokens_seen", "elapsed_s", "tokens_per_s",
              "grad_norm", "data_wait_frac")
NSP_KEYS = ("nsp_acc",)
EVAL_KEYS = ("eval_steps", "eval_mlm_acc", "eval_loss", "eval_stderr")
EVAL_NSP_KEYS = ("eval_nsp_acc",)
HISTORY_NAME = "training_history.json"


class History:
    """Columns of train and eval points plus ``meta``; ``save()`` writes the JSON atomically."""

    def __init__(self, path: str | Path, *, nsp: bool, meta: dict[str, Any] | None = None):
        self.path = Path(path)
        self.nsp = nsp
        self.train_keys = TRAIN_KEYS + (NSP_KEYS if nsp else ())
        self.eval_keys = EVAL_KEYS + (EVAL_NSP_KEYS if nsp else ())
        self.data: dict[str, Any] = {k: [] for k in self.train_keys + self.eval_keys}
        self.data["meta"] = dict(meta or {})

    @property
    def lengths(self) -> dict[str, int]:
        return {"train": len(self.data["steps"]), "eval": len(self.data["eval_steps"])}

    def add_train(self, row: dict[str, Any]) -> None:
        """Append one log point; every train column must be given."""
        for k in self.train_keys:
            self.data[k].append(row[k])

    def add_eval(self, row: dict[str, Any]) -> None:
        for k in self.eval_keys:
            self.data[k].append(row[k])

    def truncate(self, lengths: dict[str, int]) -> None:
        """Keep the first ``lengths['train']`` / ``lengths['eval']`` points (resume)."""
        for k in self.train_keys:
            del self.data[k][lengths["train"]:]
        for k in self.eval_keys:
            del self.data[k][lengths["eval"]:]

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    @classmethod
    def load(cls, path: str | Path, *, nsp: bool) -> History:
        """Read an existing history written by this module (for resume)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read history {path}: {exc}") from None
        hist = cls(path, nsp=nsp, meta=data.get("meta"))
        for k in hist.train_keys + hist.eval_keys:
            if not isinstance(data.get(k), list):
                raise UserError(f"history {path} has no column {k!r}; cannot resume")
            hist.data[k] = list(data[k])
        return hist
