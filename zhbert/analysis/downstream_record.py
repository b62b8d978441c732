"""Read a run's downstream scores file (``RUN/downstream_scores.json``) into the normalised table.

The file and every key of its records are owned by :mod:`zhbert.downstream_schema`
(``{"format_version": 1, "records": [{"task", "step", "init", "seed", "split", "metric",
"score", ...}]}``); this module checks each record with that schema and adds what the analysis
needs on top: a score is a fraction in [0, 1], a ``random`` init has step 0. The table holds the
``test`` records (a record's ``dev_score`` becomes the ``dev_score`` column); records of other
splits are counted in the notes.

The study fine-tunes every checkpoint of a task with one budget. Records of a task with another
``budget`` (the longer headline fine-tune of the final model, say) are left out of the table and
counted in the notes; the budget kept is the one most of the task's test records share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zhbert import downstream_schema as S
from zhbert.errors import UserError
from zhbert.io_utils import read_json

#: the file name beside the run's training_history.json
RECORD_NAME = S.SCORES_NAME
#: the split whose scores the table holds
SPLIT = "test"


@dataclass
class Record:
    """A read scores file: the normalised ``table`` and ``notes`` on what was left out."""

    table: pd.DataFrame
    path: Path
    notes: list[str] = field(default_factory=list)


def record_row(where: str, record: Any) -> dict:
    """One record, checked by the schema and for the analysis, as a row of the table (with its
    split and budget); a UserError names the record and the key at fault.

    >>> record_row("r", {"task": "ner", "step": 0, "init": "random", "seed": 2, "split": "test",
    ...                  "metric": "entity_f1", "score": 0.7})["score"]
    0.7
    """
    S.check_record(record, where)
    if record["step"] < 0 or record["seed"] < 0:
        key = "step" if record["step"] < 0 else "seed"
        raise UserError(f"{where}: {key!r} is {record[key]}, not a whole number >= 0")
    if record["init"] == "random" and record["step"] != 0:
        raise UserError(f"{where}: a 'random' init has step 0 (got step {record['step']})")
    for key in ("score", "dev_score"):
        value = record.get(key)
        if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
            raise UserError(f"{where}: {key!r} is {value!r}, not a fraction in [0, 1]")
    return {"task": record["task"], "step": record["step"], "seed": record["seed"],
            "score": float(record["score"]),
            "dev_score": None if record.get("dev_score") is None else float(record["dev_score"]),
            "metric": record["metric"], "split": record["split"],
            "budget": record.get("budget", "")}


def _records(path: Path, data: Any) -> list:
    if not isinstance(data, dict) or data.get("format_version") != S.FORMAT_VERSION \
            or not isinstance(data.get("records"), list):
        raise UserError(f"{path}: not a downstream scores file of format {S.FORMAT_VERSION} "
                        f"(zhbert/downstream_schema.py)")
    if not data["records"]:
        raise UserError(f"{path}: the scores file has no records")
    return data["records"]


def _study_budget(rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Per task, keep the records of the budget most of them share (the first on a tie); say how
    many were left out."""
    kept = []
    for task, group in rows.groupby("task", sort=True):
        counts = group["budget"].value_counts(sort=False)
        budget = counts.index[int(counts.to_numpy().argmax())]
        other = int((group["budget"] != budget).sum())
        if other:
            notes.append(f"{task}: {other} record(s) with another budget than "
                         f"{budget or 'the unnamed one'!r} left out")
        kept.append(group[group["budget"] == budget])
    return pd.concat(kept)


def load_record(path: str | Path) -> Record:
    """Read and check a scores file; the table has the columns of
    :data:`zhbert.analysis.downstream.COLUMNS` plus ``dev_score`` and ``metric``."""
    path = Path(path)
    records = _records(path, read_json(path, "a downstream scores file"))
    rows = pd.DataFrame([record_row(f"{path}: records[{i}]", r) for i, r in enumerate(records)])
    notes: list[str] = []
    other = int((rows["split"] != SPLIT).sum())
    if other:
        notes.append(f"{other} record(s) of another split than {SPLIT!r} not used")
    rows = rows[rows["split"] == SPLIT]
    if rows.empty:
        raise UserError(f"{path}: no {SPLIT!r} records")
    key = ["task", "step", "seed", "budget"]
    repeated = int(rows.duplicated(key, keep="last").sum())
    if repeated:
        notes.append(f"{repeated} repeated fine-tune(s) (same task, step, seed and budget): "
                     f"the last record of each is used")
    rows = rows.drop_duplicates(key, keep="last")
    table = _study_budget(rows, notes).drop(columns=["budget", "split"])
    table = table.sort_values(["task", "step", "seed"], kind="stable").reset_index(drop=True)
    return Record(table=table, path=path, notes=notes)
