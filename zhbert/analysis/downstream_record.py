"""Read a run's downstream record file (``RUN/downstream.json``) into the normalised table.

Every key name of the record lives in this module's constants, so that the writer and the
reader share one definition. The record is::

    {"format": "zhbert-downstream", "version": 1,
     "entries": [{"task": "ner", "step": 1000, "init": "pretrained", "seed": 0,
                  "dev": {"score": 0.80, ...}, "test": {"score": 0.79, ...},
                  "budget": {...}, "model": "...", ...}, ...]}

``step`` is the pretraining step of the checkpoint fine-tuned; a ``random`` init has step 0.
The writer appends one entry per fine-tune, so one (task, step, seed) may appear more than
once: the last entry wins. The study fine-tunes every checkpoint with one budget; entries of a
task with another budget (a longer headline fine-tune, say) are left out of the table, and
counted in the notes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zhbert.errors import UserError
from zhbert.io_utils import read_json

#: file name beside the run's training_history.json
RECORD_NAME = "downstream.json"
FORMAT, VERSION = "zhbert-downstream", 1
K_FORMAT, K_VERSION, K_ENTRIES = "format", "version", "entries"
K_TASK, K_STEP, K_INIT, K_SEED = "task", "step", "init", "seed"
K_DEV, K_TEST, K_SCORE, K_METRIC, K_BUDGET = "dev", "test", "score", "metric", "budget"
INIT_PRETRAINED, INIT_RANDOM = "pretrained", "random"
INITS = (INIT_PRETRAINED, INIT_RANDOM)


@dataclass
class Record:
    """A read record: the normalised ``table`` and ``notes`` on what was left out."""

    table: pd.DataFrame
    path: Path
    notes: list[str] = field(default_factory=list)


def _whole(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0 and float(value).is_integer()):
        raise UserError(f"{where}: '{key}' must be a whole number >= 0 (got {value!r})")
    return int(value)


def _score(where: str, split: str, entry: dict, required: bool) -> float | None:
    block = entry.get(split)
    if block is None and not required:
        return None
    if not isinstance(block, dict) or K_SCORE not in block:
        raise UserError(f"{where}: '{split}' must be an object with '{K_SCORE}'")
    value = block[K_SCORE]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= 1):
        raise UserError(f"{where}: '{split}.{K_SCORE}' must be a fraction in [0, 1] "
                        f"(got {value!r})")
    return float(value)


def entry_row(where: str, entry: Any) -> dict:
    """One entry as a row of the table (plus its budget, canonical JSON); a UserError names the
    entry and the key at fault.

    >>> entry_row("e", {"task": "ner", "step": 0, "init": "random", "seed": 2,
    ...                 "test": {"score": 0.7, "metric": "f1"}})["score"]
    0.7
    """
    if not isinstance(entry, dict):
        raise UserError(f"{where}: must be an object")
    missing = [k for k in (K_TASK, K_STEP, K_INIT, K_SEED, K_TEST) if k not in entry]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
    task = entry[K_TASK]
    if not isinstance(task, str) or not task:
        raise UserError(f"{where}: '{K_TASK}' must be a non-empty string (got {task!r})")
    step, seed = _whole(where, K_STEP, entry[K_STEP]), _whole(where, K_SEED, entry[K_SEED])
    init = entry[K_INIT]
    if init not in INITS:
        raise UserError(f"{where}: '{K_INIT}' must be one of {', '.join(INITS)} (got {init!r})")
    if init == INIT_RANDOM and step != 0:
        raise UserError(f"{where}: a '{INIT_RANDOM}' init has step 0 (got step {step})")
    test = entry[K_TEST]
    metric = entry.get(K_METRIC) or (test.get(K_METRIC) if isinstance(test, dict) else None)
    return {"task": task, "step": step, "seed": seed,
            "score": _score(where, K_TEST, entry, True),
            "dev_score": _score(where, K_DEV, entry, False),
            "metric": None if metric is None else str(metric),
            "budget": json.dumps(entry.get(K_BUDGET), sort_keys=True)}


def _entries(path: Path, data: Any) -> list:
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with '{K_ENTRIES}' (a downstream record)")
    if data.get(K_FORMAT) != FORMAT:
        raise UserError(f"{path}: not a downstream record ('{K_FORMAT}' is "
                        f"{data.get(K_FORMAT)!r}, expected {FORMAT!r})")
    if data.get(K_VERSION) != VERSION:
        raise UserError(f"{path}: downstream record version {data.get(K_VERSION)!r} is not "
                        f"supported (this reader reads version {VERSION})")
    entries = data.get(K_ENTRIES)
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: '{K_ENTRIES}' must be a non-empty list")
    return entries


def _study_budget(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Per task, keep the entries of the budget most entries share (the first such budget on a
    tie); say how many were left out."""
    kept = []
    for task, group in rows.groupby("task", sort=True):
        counts = group["budget"].value_counts(sort=False)
        budget = counts.index[int(counts.to_numpy().argmax())]
        other = int((group["budget"] != budget).sum())
        if other:
            notes.append(f"{task}: {other} entr{'y' if other == 1 else 'ies'} with another "
                         f"fine-tuning budget than the study's left out")
        kept.append(group[group["budget"] == budget])
    return pd.concat(kept)


def load_record(path: str | Path) -> Record:
    """Read and validate a record file; the table has the columns of
    :data:`zhbert.analysis.downstream.COLUMNS` plus ``dev_score`` and ``metric``."""
    path = Path(path)
    entries = _entries(path, read_json(path, "a downstream record"))
    rows = pd.DataFrame([entry_row(f"{path}: {K_ENTRIES}[{i}]", e)
                         for i, e in enumerate(entries)])
    notes: list[str] = []
    repeated = int(rows.duplicated(["task", "step", "seed", "budget"], keep="last").sum())
    if repeated:
        notes.append(f"{repeated} repeated fine-tune(s) (same task, step, seed and budget): "
                     f"the last entry of each is used")
    rows = rows.drop_duplicates(["task", "step", "seed", "budget"], keep="last")
    table = _study_budget(rows, notes).drop(columns="budget")
    table = table.sort_values(["task", "step", "seed"], kind="stable").reset_index(drop=True)
    return Record(table=table, path=path, notes=notes)
