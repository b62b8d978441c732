"""Writes the run's ``RUN/training_history.json``, rewritten atomically at every log point.

Keys and layout are owned by :mod:`zhbert.history_schema`; rows are checked against it, and
non-finite values are stored as ``null`` so the file is always strict JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zhbert import history_schema as H
from zhbert.io_utils import atomic_write_json


class HistoryWriter:
    """Train and eval columns plus ``meta``; ``save()`` writes the JSON atomically."""

    def __init__(self, path: str | Path, *, nsp: bool, meta: dict[str, Any] | None = None):
        self.path = Path(path)
        self.nsp = nsp
        self.train_keys = H.keys("train", nsp=nsp)
        self.eval_keys = H.keys("eval", nsp=nsp)
        self.data: dict[str, Any] = {k: [] for k in self.train_keys + self.eval_keys}
        self.data[H.META_KEY] = dict(meta or {})

    @property
    def lengths(self) -> dict[str, int]:
        return {"train": len(self.data[H.STEPS]), "eval": len(self.data[H.EVAL_STEPS])}

    def _add(self, series: str, row: dict[str, Any]) -> None:
        H.check_row(series, row, nsp=self.nsp)
        for k in (self.train_keys if series == "train" else self.eval_keys):
            self.data[k].append(H.finite_or_none(row[k]))

    def add_train(self, row: dict[str, Any]) -> None:
        """Append one log point; exactly the schema's train keys must be given."""
        self._add("train", row)

    def add_eval(self, row: dict[str, Any]) -> None:
        """Append one held-out evaluation; exactly the schema's eval keys must be given."""
        self._add("eval", row)

    def truncate(self, lengths: dict[str, int]) -> None:
        """Keep the first ``lengths['train']`` / ``lengths['eval']`` points (resume).

        Forecast columns missing from a history written before they existed are filled with None.
        """
        for k in H.FORECAST_KEYS:
            self.data.setdefault(k, [None] * len(self.data[H.EVAL_STEPS]))
        for k in self.train_keys:
            del self.data[k][lengths["train"]:]
        for k in self.eval_keys:
            del self.data[k][lengths["eval"]:]

    def save(self) -> None:
        """Rewrite the file atomically (temporary file, fsync, rename)."""
        H.check_meta(self.data[H.META_KEY])
        atomic_write_json(self.path, self.data)
