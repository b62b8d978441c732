"""The one owner of ``RUN/downstream_scores.json``: a run's downstream scores per checkpoint.

Fine-tuning (``examples/finetune.py``, ``make downstream``) appends one record per fine-tune;
the analysis and the figures read the file. It sits beside ``training_history.json`` and joins it
on the pretraining step (held-out MLM accuracy at that step is the history's ``eval_mlm_acc``;
it is not copied here). Layout (a JSON object, written atomically)::

    {"format_version": 1,
     "records": [{"task": "ner", "step": 4000, "init": "pretrained", "seed": 0,
                  "split": "test", "metric": "entity_f1", "score": 0.83, ...}, ...]}

Every record holds :data:`REQUIRED` and may hold :data:`OPTIONAL` (nothing else). ``step`` is
the pretraining step of the checkpoint fine-tuned (0 with ``init`` "random": the same
architecture untrained). A record replaces an earlier one with the same :func:`record_key`, so
re-running a fine-tune updates its row instead of duplicating it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zhbert.errors import UserError
from zhbert.io_utils import atomic_write_json, read_json

SCORES_NAME = "downstream_scores.json"
FORMAT_VERSION = 1
INITS = ("pretrained", "random")
#: key -> (type, meaning) of the keys every record holds
REQUIRED: dict[str, tuple[type | tuple[type, ...], str]] = {
    "task": (str, "task name (zhbert.downstream.tasks.TASKS)"),
    "step": (int, "pretraining step of the checkpoint (0 for init random)"),
    "init": (str, "pretrained (from the checkpoint) or random (same architecture, untrained)"),
    "seed": (int, "fine-tuning seed"),
    "split": (str, "split the score is on: test (or dev)"),
    "metric": (str, "the task's metric (Task.metric)"),
    "score": ((int, float), "the main metric on that split"),
}
#: key -> (type, meaning) of the keys a record may hold
OPTIONAL: dict[str, tuple[type | tuple[type, ...], str]] = {
    "checkpoint": (str, "path of the checkpoint or export fine-tuned"),
    "dev_score": ((int, float), "the main metric on dev of the chosen epoch/checkpoint"),
    "budget": (str, "name of the fine-tuning budget (e.g. study, full): a part of the key"),
    "train_examples": (int, "train examples used"),
    "epochs": ((int, float), "fine-tuning epochs"),
    "optimizer_steps": (int, "fine-tuning optimizer steps"),
    "elapsed_s": ((int, float), "wall seconds of the fine-tune"),
    "scores": (dict, "the scorer's full output (precision, recall, ...)"),
    "model": (str, "model class or export kind"),
    "git_commit": (str, "commit of the code that ran"),
}


def scores_path(run_dir: str | Path) -> Path:
    """``RUN/downstream_scores.json``."""
    return Path(run_dir) / SCORES_NAME


def record_key(record: Mapping[str, Any]) -> tuple:
    """What identifies a record: task, step, init, seed, split and budget.

    >>> record_key({"task": "ner", "step": 10, "init": "pretrained", "seed": 1, "split": "test"})
    ('ner', 10, 'pretrained', 1, 'test', '')
    """
    return (record["task"], record["step"], record["init"], record["seed"], record["split"],
            record.get("budget", ""))


def check_record(record: Mapping[str, Any], where: str = SCORES_NAME) -> None:
    """UserError naming the first problem of a record: a missing, unknown or mistyped key."""
    if not isinstance(record, Mapping):
        raise UserError(f"{where}: a record is not a JSON object")
    for key in REQUIRED:
        if key not in record:
            raise UserError(f"{where}: a record has no {key!r}")
    for key, value in record.items():
        spec = REQUIRED.get(key) or OPTIONAL.get(key)
        if spec is None:
            raise UserError(f"{where}: unknown record key {key!r} (zhbert/downstream_schema.py)")
        if not isinstance(value, spec[0]) or isinstance(value, bool):
            names = " or ".join(t.__name__ for t in (spec[0] if isinstance(spec[0], tuple)
                                                     else (spec[0],)))
            raise UserError(f"{where}: {key!r} is {value!r}, not {names}")
    if record["init"] not in INITS:
        raise UserError(f"{where}: init {record['init']!r} is not one of {', '.join(INITS)}")
    if not math.isfinite(record["score"]):
        raise UserError(f"{where}: score {record['score']!r} is not a finite number")


def load_scores(run_dir: str | Path) -> list[dict]:
    """The records of a run's scores file, checked; [] when the run has none."""
    path = scores_path(run_dir)
    if not path.exists():
        return []
    data = read_json(path, "a downstream scores file", obj=True)
    if data.get("format_version") != FORMAT_VERSION or not isinstance(data.get("records"), list):
        raise UserError(f"{path}: not a downstream scores file of format {FORMAT_VERSION}")
    for record in data["records"]:
        check_record(record, str(path))
    return data["records"]


def merge_records(old: Iterable[dict], new: Iterable[dict]) -> list[dict]:
    """``old`` with ``new`` added, a new record replacing an old one with the same key; sorted.

    >>> a = {"task": "ner", "step": 0, "init": "random", "seed": 0, "split": "test",
    ...      "metric": "entity_f1", "score": 0.5}
    >>> [r["score"] for r in merge_records([a], [{**a, "score": 0.6}])]
    [0.6]
    """
    merged = {record_key(r): r for r in old}
    merged.update((record_key(r), r) for r in new)
    return [merged[k] for k in sorted(merged, key=lambda k: (k[0], k[5], k[4], k[1], k[2], k[3]))]


def save_records(run_dir: str | Path, records: Iterable[dict]) -> list[dict]:
    """Add records to the run's scores file (atomically); returns all its records."""
    records = list(records)
    for record in records:
        check_record(record)
    merged = merge_records(load_scores(run_dir), records)
    atomic_write_json(scores_path(run_dir), {"format_version": FORMAT_VERSION, "records": merged})
    return merged


def by_step(records: Iterable[Mapping], task: str, split: str = "test",
            budget: str = "") -> dict[tuple[str, int], list[float]]:
    """Scores of one task grouped by ``(init, step)``, one value per seed (sorted by seed).

    >>> r = [{"task": "ner", "step": 5, "init": "pretrained", "seed": s, "split": "test",
    ...       "metric": "entity_f1", "score": v} for s, v in ((1, 0.7), (0, 0.6))]
    >>> by_step(r, "ner")
    {('pretrained', 5): [0.6, 0.7]}
    """
    groups: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for r in records:
        if r["task"] == task and r["split"] == split and r.get("budget", "") == budget:
            groups.setdefault((r["init"], r["step"]), []).append((r["seed"], r["score"]))
    return {k: [v for _, v in sorted(groups[k])] for k in sorted(groups)}
