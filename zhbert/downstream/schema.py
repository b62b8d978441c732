"""The one owner of ``downstream.json``: a run's fine-tuning scores, per checkpoint.

The file lives beside the run's history (``RUN/downstream.json``, :data:`DOWNSTREAM_NAME`).
``examples/finetune.py --record RUN/downstream.json`` adds or replaces one entry per fine-tune
(:func:`update_record`); the analysis reads it with :func:`read_record`, which validates every
entry. The module is torch-free, so that the analysis can read the file without the trainer.

Layout of the file (a JSON object)::

    {"format": "zhbert-downstream", "version": 1,
     "entries": [{"task": "ner", "metric": "f1", "step": 3000, "init": "pretrained", "seed": 0,
                  "dev": {"score": 0.71, ...}, "test": {"score": 0.69, ...},
                  "budget": {"train_examples": 2000, "epochs": 1, "max_steps": 0,
                             "batch_size": 32, "lr": 0.001, "max_length": 128},
                  "updates": 63, "time_s": 41.2, "precision": "fp32",
                  "model": "runs/demo/checkpoints/step_3000", "result": "…/result.json"},
                 ...]}

An entry is identified by ``(task, step, init, seed, budget)``: recording the same fine-tune
again replaces its entry, and fine-tunes with different budgets (a study's small one, a
headline's full one) live side by side. ``step`` is the pretraining step of the weights that were
fine-tuned, and 0 for ``init="random"``. ``dev`` and ``test`` are the task scorer's dicts; their
``score`` is the task's headline metric (``metric``). Entries are kept sorted by their key.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zhbert.errors import UserError
from zhbert.io_utils import atomic_write_json, read_json

DOWNSTREAM_NAME = "downstream.json"
FORMAT = "zhbert-downstream"
VERSION = 1
INITS = ("pretrained", "random")
#: the fine-tuning budget's keys: what makes two fine-tunes of one checkpoint comparable
BUDGET_KEYS = ("train_examples", "epochs", "max_steps", "batch_size", "lr", "max_length")


@dataclass(frozen=True)
class Entry:
    """One fine-tune of one checkpoint on one task (see the module docstring)."""

    task: str
    metric: str
    step: int
    init: str
    seed: int
    dev: dict[str, Any]
    test: dict[str, Any]
    budget: dict[str, Any]
    updates: int
    time_s: float
    precision: str
    model: str
    result: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (not validated)

    @property
    def key(self) -> tuple:
        """``(task, step, init, seed, budget)``: recording an equal key replaces the entry.

        >>> e = Entry("ner", "f1", 0, "random", 1, {"score": 0.5}, {"score": 0.4},
        ...           {"lr": 0.001}, 10, 1.0, "fp32", "runs/demo/final")
        >>> e.key
        ('ner', 0, 'random', 1, '{"lr": 0.001}')
        """
        return (self.task, self.step, self.init, self.seed,
                json.dumps(self.budget, sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not out["extra"]:
            del out["extra"]
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _problem(e: Any) -> str | None:
    """Why ``e`` (a parsed JSON value) is not a valid entry, or None."""
    if not isinstance(e, dict):
        return "not a JSON object"
    names = {f for f in Entry.__dataclass_fields__}
    required = names - {"result", "extra"}
    if missing := sorted(required - set(e)):
        return f"missing {', '.join(missing)}"
    if unknown := sorted(set(e) - names):
        return f"unknown key(s) {', '.join(unknown)}"
    for key in ("task", "metric", "precision", "model"):
        if not isinstance(e[key], str) or not e[key]:
            return f"{key} must be a non-empty string"
    for key in ("step", "seed", "updates"):
        if not _is_int(e[key]) or e[key] < 0:
            return f"{key} must be an integer >= 0 (got {e[key]!r})"
    if e["init"] not in INITS:
        return f"init must be one of {', '.join(INITS)} (got {e['init']!r})"
    if e["init"] == "random" and e["step"] != 0:
        return f"a random-init entry has step 0 (got {e['step']})"
    for split in ("dev", "test"):
        if not isinstance(e[split], dict) or not _is_number(e[split].get("score")):
            return f"{split} must be an object with a finite number 'score'"
    budget = e["budget"]
    if not isinstance(budget, dict) or sorted(budget) != sorted(BUDGET_KEYS):
        return f"budget must be an object with exactly the keys {', '.join(BUDGET_KEYS)}"
    if not all(_is_number(v) for v in budget.values()):
        return "budget values must be finite numbers"
    if not _is_number(e["time_s"]) or e["time_s"] < 0:
        return "time_s must be a finite number >= 0"
    if e.get("result") is not None and not isinstance(e["result"], str):
        return "result must be a string or null"
    if not isinstance(e.get("extra", {}), dict):
        return "extra must be an object"
    return None


def entry_from_dict(e: Any, where: str) -> Entry:
    """A validated :class:`Entry`; ``where`` names it in the error."""
    problem = _problem(e)
    if problem:
        raise UserError(f"{where}: invalid downstream entry: {problem}")
    return Entry(**e)


def parse_record(data: Any, source: str | Path) -> list[Entry]:
    """The entries of a parsed ``downstream.json``; UserError naming ``source`` when malformed.

    >>> parse_record({"format": FORMAT, "version": VERSION, "entries": []}, "d.json")
    []
    """
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object (a downstream record)")
    if data.get("format") != FORMAT:
        raise UserError(f"{source}: not a downstream record (format {data.get('format')!r}, "
                        f"want {FORMAT!r})")
    if data.get("version") != VERSION:
        raise UserError(f"{source}: downstream record version {data.get('version')!r} is not "
                        f"supported (want {VERSION})")
    if not isinstance(data.get("entries"), list):
        raise UserError(f"{source}: 'entries' must be a list")
    entries = [entry_from_dict(e, f"{source}: entry {i}") for i, e in enumerate(data["entries"])]
    seen: dict[tuple, int] = {}
    for i, e in enumerate(entries):
        if e.key in seen:
            raise UserError(f"{source}: entries {seen[e.key]} and {i} are the same fine-tune "
                            f"(task {e.task}, step {e.step}, init {e.init}, seed {e.seed})")
        seen[e.key] = i
    return entries


def read_record(path: str | Path, *, missing_ok: bool = False) -> list[Entry]:
    """The validated entries of the record file ``path`` (``[]`` if absent and ``missing_ok``)."""
    path = Path(path)
    if missing_ok and not path.exists():
        return []
    return parse_record(read_json(path, "a downstream record"), path)


def record_dict(entries: list[Entry]) -> dict[str, Any]:
    """The file's JSON object for ``entries`` (sorted by key)."""
    return {"format": FORMAT, "version": VERSION,
            "entries": [e.to_dict() for e in sorted(entries, key=lambda e: e.key)]}


def update_record(path: str | Path, entry: Entry) -> list[Entry]:
    """Add ``entry`` to the record ``path`` (created if absent), replacing an entry with the
    same key; written atomically. Returns the entries written. One writer at a time."""
    entry_from_dict(entry.to_dict(), "new entry")  # a code bug if this fails
    entries = [e for e in read_record(path, missing_ok=True) if e.key != entry.key]
    entries.append(entry)
    atomic_write_json(path, record_dict(entries))
    return sorted(entries, key=lambda e: e.key)


__all__ = ["BUDGET_KEYS", "DOWNSTREAM_NAME", "Entry", "INITS", "entry_from_dict",
           "parse_record", "read_record", "record_dict", "update_record"]
