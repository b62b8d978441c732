#!/usr/bin/env python
"""Non-neural baselines of the downstream tasks on their fixed test splits: a JSON record and a table.

    python examples/downstream_baselines.py --json results/downstream/baselines.json
    python examples/downstream_baselines.py --task cws --train-limit 2000 --test-limit 500

NER: character CRF and longest match against the train entities; CWS: jieba (default dictionary,
another segmentation standard) and forward maximum matching against the train words; sentiment:
character n-gram TF-IDF with logistic regression (zhbert.downstream.baselines). Each baseline
trains on the task's train split (or its seeded subsample, ``Task.load(limit=...)``) and is scored
on the whole test split; the record keeps the fit and predict times, wall and CPU (this
process's user + system time: the table shows CPU seconds, steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert.downstream.baselines import BASELINES, format_table  # noqa: E402
from zhbert.downstream.tasks import get_task  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", action="append", choices=tuple(BASELINES), default=None,
                   help="only this task (repeatable; default: every task with baselines)")
    p.add_argument("--baseline", action="append", default=None, metavar="NAME",
                   help="only this baseline (repeatable): "
                        + ", ".join(n for b in BASELINES.values() for n in b))
    p.add_argument("--train-limit", type=int, default=None,
                   help="train every baseline on a seeded subsample of this many train examples")
    p.add_argument("--crf-train-limit", type=int, default=None,
                   help="train the CRF on a seeded subsample of this many (it is the slow one)")
    p.add_argument("--test-limit", type=int, default=None,
                   help="score on a seeded subsample of the test split (quick checks only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsamples (default 0)")
    p.add_argument("--json", type=Path, default=None, help="write the record to this file")
    return p.parse_args(argv)


def _limit(args: argparse.Namespace, name: str) -> int | None:
    limits = [v for v in (args.train_limit, args.crf_train_limit if name == "crf" else None) if v]
    return min(limits) if limits else None


def run_baseline(task_name: str, name: str, args: argparse.Namespace) -> dict:
    """Fit one baseline on train (dev for its choices), predict test, score; with timings."""
    task = get_task(task_name)
    limit = _limit(args, name)
    train = task.load("train", limit, args.seed)
    dev = task.load("dev", limit, args.seed)
    test = task.load("test", args.test_limit, args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    predict = BASELINES[task_name][name](train, dev)
    t1, c1 = time.perf_counter(), time.process_time()
    pred = predict(test)
    t2, c2 = time.perf_counter(), time.process_time()
    scores = task.score(task.gold(test), pred)
    scores.pop("per_type", None)
    return {**scores, "train_examples": len(train), "train_limit": limit,
            "test_examples": len(test), "fit_s": round(t1 - t0, 1), "predict_s": round(t2 - t1, 1),
            "fit_cpu_s": round(c1 - c0, 1), "predict_cpu_s": round(c2 - c1, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen baselines, print the table, write the JSON record."""
    args = parse_args(argv)
    for flag in ("train_limit", "crf_train_limit", "test_limit"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1")
    known = {n for b in BASELINES.values() for n in b}
    for name in args.baseline or ():
        if name not in known:
            raise UserError(f"unknown baseline {name!r} (choose from {', '.join(sorted(known))})")
    t0 = time.perf_counter()
    record: dict = {"tasks": {}, "seed": args.seed, "test_limit": args.test_limit,
                    "python": platform.python_version(), "machine": platform.machine()}
    for task_name in args.task or BASELINES:
        for name in BASELINES[task_name]:
            if args.baseline and name not in args.baseline:
                continue
            print(f"==> {task_name} / {name}", flush=True)
            record["tasks"].setdefault(task_name, {})[name] = run_baseline(task_name, name, args)
    record["total_s"] = round(time.perf_counter() - t0, 1)
    print(format_table(record))
    if args.json:
        atomic_write_json(args.json, record)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
