#!/usr/bin/env python
"""The demo preset's tuning runs (docs/TRAINING.md, "How the demo was tuned") from one command.

    python studies/demo_tuning.py               # train (or reuse) every arm, then tabulate
    python studies/demo_tuning.py --skip-train  # tabulate the committed histories only
    python studies/demo_tuning.py --dry-run     # print the main_train.py commands

Every arm is ``main_train.py --preset demo`` with ``BASE`` (a 400-step cosine schedule, 25 %
training masks, a held-out evaluation every 50 steps) and its own overrides, trained one at a
time into ``--runs-dir`` and reused while its settings hold (``run_set``). Each history is copied
into ``--out-dir`` (committed: ``results/tuning/``) and ``tuning.json`` records the commands,
the held-out accuracy at the table's steps and the table itself; the earlier post-LN BERT demo
(``results/calibration/bert_demo_history.json``) is its first row. Held-out accuracy at a step
does not depend on the machine's load, so the table is what to compare; wall times are recorded
but only comparable within one quiet run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the repository root: `studies` (and zhbert without pip install -e)
    sys.path.insert(0, str(ROOT))

from studies import run_set as rs  # noqa: E402
from zhbert import history_schema as H  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json, read_json  # noqa: E402

PRESET = "demo"
#: every arm: a 400-step cosine schedule, 25 % training masks, held-out points every 50 steps
BASE = ["run.max_steps=400", "run.time_budget_s=0", "run.eval_interval=50", "data.mask_rate=0.25",
        "data.batch_size=64", "optim.warmup_steps=100",
        "run.export_final=false", "run.progress=false", "run.tensorboard=false",
        "run.save_interval=100000", "run.milestones=[]"]
#: name -> (the table's label, overrides on top of BASE)
ARMS: dict[str, tuple[str, list[str]]] = {
    "base": ("modern, base (lr 2e-3, mask 25 %)", []),
    "lr4e-3": ("base + `optim.lr=4e-3`", ["optim.lr=4e-3"]),
    "batch32": ("base + `data.batch_size=32 run.max_steps=800 optim.warmup_steps=200 "
                "run.eval_interval=100` (same tokens at twice the steps)",
                ["data.batch_size=32", "run.max_steps=800", "optim.warmup_steps=200",
                 "run.eval_interval=100"]),
    "mask15": ("base + `data.mask_rate=0.15`", ["data.mask_rate=0.15"]),
    "heads8": ("base + `model.num_heads=8`", ["model.num_heads=8"]),
    "mask35": ("base + `data.mask_rate=0.35` (**the preset's mask**)", ["data.mask_rate=0.35"]),
    "mask45": ("base + `data.mask_rate=0.45`", ["data.mask_rate=0.45"]),
    "steps800": ("base + `run.max_steps=800 run.eval_interval=100` (longer schedule)",
                 ["run.max_steps=800", "run.eval_interval=100"]),
    # the batch-32 lead at the demo's full length: the preset's settings, half the batch for
    # twice the steps (the same tokens as the committed 2,000-step demo run)
    "demo_batch32": ("the `demo` preset with `data.batch_size=32 run.max_steps=4000 "
                     "optim.warmup_steps=200` (the demo run's tokens at twice the steps)",
                     ["data.mask_rate=0.35", "data.batch_size=32", "run.max_steps=4000",
                      "optim.warmup_steps=200", "run.eval_interval=200"]),
}
BERT_ROW = ("post-LN BERT, the earlier demo preset (1,000-step schedule, lr 1e-3, mask 25 %; "
            "`results/calibration/bert_demo_history.json`)",
            ROOT / "results" / "calibration" / "bert_demo_history.json")
#: the table's step columns; held-out points after the last one go to "later"
COLUMNS = (100, 200, 300, 400)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    rs.add_args(p, names=list(ARMS), names_flag="--arms", runs_dir="runs/tuning",
                out_dir="results/tuning", record="tuning.json")
    return p.parse_args(argv)


def arm_overrides(name: str, corpus: Path) -> list[str]:
    """Every ``--set`` of arm ``name``: corpus, BASE, then its own (later ones win)."""
    return [f"data.corpus_dir={corpus}", *BASE, *ARMS[name][1]]


def held_out_at(history: dict) -> dict:
    """``{"at": {step: acc} for COLUMNS, "later": [[step, acc], ...], "final": [step, acc]}``."""
    steps, acc = history[H.EVAL_STEPS], history[H.EVAL_MLM_ACC]
    at = {str(s): a for s, a in zip(steps, acc, strict=True) if s in COLUMNS}
    later = [[s, a] for s, a in zip(steps, acc, strict=True) if s > COLUMNS[-1]]
    return {"at": at, "later": later, "final": [steps[-1], acc[-1]]}


def markdown_table(record: dict) -> str:
    """docs/TRAINING.md's tuning table from ``tuning.json``'s content."""
    head = " | ".join(f"step {s}" for s in COLUMNS)
    lines = [f"| run (overrides) | {head} | later |", "| --- |" + " --- |" * (len(COLUMNS) + 1)]
    for row in record["rows"]:
        cells = [f"{100 * row['at'][str(s)]:.1f} %" if str(s) in row["at"] else "—"
                 for s in COLUMNS]
        later = ", ".join(f"{100 * a:.1f} % at {s:,}" for s, a in row["later"][-4:])
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {later} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or reuse) the arms, then write tuning.json and print the table."""
    args = parse_args(argv)
    done = rs.run_arms(args, PRESET, ARMS, lambda n: arm_overrides(n, args.corpus),
                       "the committed tuning runs", "tuning.json", held_out_at)
    if done is None:
        return 0
    runs, rows = done
    path = args.out_dir / "tuning.json"
    bert = {"arm": "bert_demo", "label": BERT_ROW[0],
            **held_out_at(read_json(BERT_ROW[1], "a training history", obj=True))}
    record = {"command": "python studies/demo_tuning.py", "preset": PRESET, "base": BASE,
              "runs": runs, "rows": [bert, *rows]}
    record["table"] = markdown_table(record)
    atomic_write_json(path, record)
    print(record["table"])
    return 0


if __name__ == "__main__":
    run_cli(main)
