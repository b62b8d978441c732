#!/usr/bin/env python
"""How much of each task's test split the demo pretraining corpus holds, without and with the guard.

    python examples/downstream_overlap.py --json results/downstream/overlap.json

Reads the demo corpus the way the preparation does (normalise, split, filter, dedup; no vocabulary
and no binary files), once with the held-out guard off and once on, and counts for each task's
test split: test sentences equal to a corpus sentence (``zhbert.taskdata.heldout.text_key``), test
sentences sharing a character n-gram with the corpus, and the share of test characters such
n-grams cover (``zhbert.taskdata.heldout.ngram_overlap``). The corpus is every kept sentence, train
and val split together: what a run may see. docs/DOWNSTREAM.md shows the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert.corpus.prepare import (  # noqa: E402
    PrepareOptions,
    collect_sentences,
    heldout_keys,
    iter_documents,
)
from zhbert.downstream.tasks import TASKS  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402
from zhbert.taskdata.heldout import SAME_TEXTS, ngram_overlap  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, default=None, help="write the record to this file")
    p.add_argument("--ngram", type=int, default=13,
                   help="length of the shared character n-grams (default 13)")
    p.add_argument("--max-documents", type=int, default=None,
                   help="read only the first N demo documents (quick checks and tests)")
    return p.parse_args(argv)


def demo_sentences(guard: bool, max_documents: int | None) -> tuple[list[str], int]:
    """Every sentence the demo preparation keeps, and how many the guard dropped."""
    options = PrepareOptions(max_documents=max_documents, heldout_guard=guard)
    keys = heldout_keys() if guard else frozenset()
    docs, per_source = collect_sentences(iter_documents("demo", [], options, {}), options,
                                         progress=False, heldout=keys)
    dropped = sum(s["dropped"]["heldout"] for s in per_source.values())
    return [s for d in docs for s in d], dropped


def measure(ngram: int, max_documents: int | None) -> dict:
    """The overlap record: per guard setting, per task, the counts of :func:`ngram_overlap`."""
    if ngram < 1:
        raise UserError(f"--ngram must be >= 1 (got {ngram})")
    t0 = time.perf_counter()
    record: dict = {"ngram": ngram, "max_documents": max_documents, "corpus": {}, "tasks": {}}
    for guard in (False, True):
        name = "guard_on" if guard else "guard_off"
        sentences, dropped = demo_sentences(guard, max_documents)
        record["corpus"][name] = {"sentences": len(sentences), "heldout_dropped": dropped}
        for task in TASKS:
            if task in SAME_TEXTS:
                continue
            tests = [e.text for e in TASKS[task].load("test")]
            record["tasks"].setdefault(task, {})[name] = ngram_overlap(tests, sentences, ngram)
    record["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return record


def format_table(record: dict) -> str:
    """A Markdown table of the record (the table in docs/DOWNSTREAM.md)."""
    n = record["ngram"]
    lines = [f"| test split | sentences | guard | equal to a corpus sentence | sharing a {n}-gram | "
             f"characters in shared {n}-grams |", "|---|---:|---|---:|---:|---:|"]
    for task, by_guard in record["tasks"].items():
        for name, r in by_guard.items():
            lines.append(f"| {task} | {r['test_sentences']:,} | {name.removeprefix('guard_')} | "
                         f"{r['exact']:,} | {r['with_shared_ngram']:,} | "
                         f"{r['covered_char_share']:.2%} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table and the corpus counts, write the JSON."""
    args = parse_args(argv)
    record = measure(args.ngram, args.max_documents)
    print(format_table(record))
    print(json.dumps(record["corpus"]))
    if args.json:
        atomic_write_json(args.json, record)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
