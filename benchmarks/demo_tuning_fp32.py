#!/usr/bin/env python
"""The fp32 demo recipe's tuning runs (docs/TRAINING.md, "How the fp32 demo was tuned").

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/demo_tuning_fp32.py
    python benchmarks/demo_tuning_fp32.py --skip-train   # tabulate the committed histories only

On a CPU without native bf16 the demo trains in fp32 under a wall-clock budget, so arms are
compared at equal *time*, not equal steps: every arm is ``main_train.py --preset demo`` with
``BASE`` (fp32, the demo's training budget, held-out points every 50 steps) and its own
overrides, trained one at a time (``run_set``), and the table gives the held-out accuracy at the
end of the budget, the steps the budget allowed and the pace. The two variables above make a CPU
with native bf16 compute as one without (oneDNN and ATen limited to AVX2), which is how these
runs were made; ``meta.precision_choice`` in each history records what the trainer saw. Wall
times depend on the machine and its load: compare arms only within one quiet run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import run_set as rs  # noqa: E402

from zhbert import history_schema as H  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402

PRESET = "demo"
#: every arm: fp32 under the demo's training budget, a long step bound, held-out every 50 steps
BASE = ["run.precision=fp32", "run.time_budget_s=540", "run.max_steps=6000",
        "run.eval_interval=50", "run.export_final=false", "run.progress=false",
        "run.tensorboard=false", "run.save_interval=100000", "run.milestones=[]"]
#: name -> (the table's label, overrides on top of BASE)
ARMS: dict[str, tuple[str, list[str]]] = {
    "base": ("the `demo` preset in fp32", []),
    "batch32": ("`data.batch_size=32 optim.warmup_steps=200`",
                ["data.batch_size=32", "optim.warmup_steps=200"]),
    "l3_batch32": ("`model.num_layers=3 data.batch_size=32 optim.warmup_steps=200`",
                   ["model.num_layers=3", "data.batch_size=32", "optim.warmup_steps=200"]),
    "lr3e-3_batch32": ("`optim.lr=3e-3 data.batch_size=32 optim.warmup_steps=200`",
                       ["optim.lr=3e-3", "data.batch_size=32", "optim.warmup_steps=200"]),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    rs.add_args(p, names=list(ARMS), names_flag="--arms", runs_dir="runs/tuning_fp32",
                out_dir="results/tuning_fp32", record="tuning_fp32.json")
    return p.parse_args(argv)


def arm_overrides(name: str, corpus: Path) -> list[str]:
    """Every ``--set`` of arm ``name``: corpus, BASE, then its own (later ones win)."""
    return [f"data.corpus_dir={corpus}", *BASE, *ARMS[name][1]]


def summary(history: dict) -> dict:
    """Final held-out accuracy, steps, training seconds, median pace and the precision seen."""
    meta = history.get(H.META_KEY) or {}
    tps = sorted(history[H.TOKENS_PER_S])
    return {"final_acc": history[H.EVAL_MLM_ACC][-1], "stderr": history[H.EVAL_STDERR][-1],
            "steps": history[H.STEPS][-1], "train_s": history[H.ELAPSED_S][-1],
            "median_tokens_per_s": tps[len(tps) // 2], "precision": meta.get("precision"),
            "precision_reason": (meta.get("precision_choice") or {}).get("reason"),
            "device": meta.get("device")}


def markdown_table(record: dict) -> str:
    """docs/TRAINING.md's fp32 tuning table from ``tuning_fp32.json``'s content."""
    lines = ["| run (overrides on the fp32 base) | held-out MLM acc at the budget | steps "
             "| training s | median tok/s |", "| --- | --- | --- | --- | --- |"]
    for row in record["rows"]:
        lines.append(f"| {row['label']} | {100 * row['final_acc']:.2f} % ± "
                     f"{100 * row['stderr']:.2f} | {row['steps']:,} | {row['train_s']:.0f} "
                     f"| {row['median_tokens_per_s']:,.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or reuse) the arms, then write tuning_fp32.json and print the table."""
    args = parse_args(argv)
    rs.check_dirs(args)
    if args.dry_run:
        print("\n".join(rs.shown(rs.train_command(PRESET, args.runs_dir / n,
                                                  arm_overrides(n, args.corpus)))
                        for n in args.arms))
        return 0
    runs, histories = rs.train_set(args, args.arms, PRESET,
                                   lambda n: arm_overrides(n, args.corpus),
                                   what="the committed fp32 tuning runs")
    path = args.out_dir / "tuning_fp32.json"
    old = rs.previous_record(path)
    rs.keep_wall_times(runs, old)
    rows = {r["arm"]: r for r in old.get("rows", []) if r.get("arm") in ARMS}
    runs = {**{n: r for n, r in old.get("runs", {}).items() if n in rows}, **runs}
    for n in args.arms:
        rows[n] = {"arm": n, "label": ARMS[n][0], "overrides": ARMS[n][1],
                   **summary(histories[n])}
    record = {"command": "python benchmarks/demo_tuning_fp32.py", "preset": PRESET,
              "base": BASE, "runs": {n: runs[n] for n in ARMS if n in runs},
              "rows": [rows[n] for n in ARMS if n in rows]}
    record["table"] = markdown_table(record)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    print(record["table"])
    return 0


if __name__ == "__main__":
    run_cli(main)
