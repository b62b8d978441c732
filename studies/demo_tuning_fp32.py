#!/usr/bin/env python
"""The fp32 demo recipe's tuning runs (docs/TRAINING.md, "How the fp32 demo was tuned").

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python studies/demo_tuning_fp32.py
    python studies/demo_tuning_fp32.py --skip-train   # tabulate the committed histories only

On a CPU without native bf16 the demo trains in fp32 under a wall-clock budget. Its arms are
compared at equal training *tokens*, the budget's worth at the fp32 pace, each with a fixed
step count so that the result does not depend on the machine's load: every arm is
``main_train.py --preset demo`` with ``BASE`` (fp32, 4,096,000 training tokens: 1,000 steps of
64 x 64, held-out points every 100 steps of 4,096 tokens) and its own overrides, trained one at
a time (``run_set``). A cosine schedule over a fixed step count is what a budget run follows
once its plan settles. The two variables above make a CPU with native bf16 compute as one
without (oneDNN and ATen limited to AVX2); ``meta.precision_choice`` in each history records what
the trainer saw. Which arm costs how much time per token is measured separately
(``benchmarks/demo_shapes.py --precision fp32``); wall times here depend on the machine's load.
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
from zhbert.io_utils import atomic_write_json  # noqa: E402

PRESET = "demo"
#: every arm: fp32, 1,000 steps of 64 x 64 tokens, held-out points every 100 steps
BASE = ["run.precision=fp32", "run.max_steps=1000", "run.time_budget_s=0",
        "run.eval_interval=100", "data.batch_size=64", "optim.warmup_steps=100",
        "run.export_final=false", "run.progress=false", "run.tensorboard=false",
        "run.save_interval=100000", "run.milestones=[]"]
#: name -> (the table's label, overrides on top of BASE); same tokens in every arm
ARMS: dict[str, tuple[str, list[str]]] = {
    "base": ("the `demo` preset in fp32, 1,000 steps of 64 x 64", []),
    "batch32": ("`data.batch_size=32 run.max_steps=2000 optim.warmup_steps=200 "
                "run.eval_interval=200`",
                ["data.batch_size=32", "run.max_steps=2000", "optim.warmup_steps=200",
                 "run.eval_interval=200"]),
    "lr3e-3": ("`optim.lr=3e-3`", ["optim.lr=3e-3"]),
    "l3": ("`model.num_layers=3` (three quarters of the encoder's cost per token)",
           ["model.num_layers=3"]),
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
    """Held-out accuracy by training tokens, the final one, steps, seconds and the precision."""
    meta = history.get(H.META_KEY) or {}
    per_step = meta.get("global_batch", 0) * meta.get("tokens_per_sequence", 0)
    curve = [[s * per_step, a] for s, a in zip(history[H.EVAL_STEPS], history[H.EVAL_MLM_ACC],
                                               strict=True)]
    return {"curve_tokens": curve, "final_acc": history[H.EVAL_MLM_ACC][-1],
            "stderr": history[H.EVAL_STDERR][-1], "steps": history[H.STEPS][-1],
            "train_s": history[H.ELAPSED_S][-1], "precision": meta.get("precision"),
            "precision_reason": (meta.get("precision_choice") or {}).get("reason"),
            "device": meta.get("device")}


#: the table's columns: held-out accuracy after this many training tokens
TOKEN_COLUMNS = (819_200, 1_638_400, 2_457_600, 3_276_800, 4_096_000)


def markdown_table(record: dict) -> str:
    """docs/TRAINING.md's fp32 tuning table from ``tuning_fp32.json``'s content."""
    head = " | ".join(f"{t / 1e6:.2f}M tokens" for t in TOKEN_COLUMNS)
    lines = [f"| run (overrides on the fp32 base) | {head} | training s (load-dependent) |",
             "| --- |" + " --- |" * (len(TOKEN_COLUMNS) + 1)]
    for row in record["rows"]:
        at = {int(t): a for t, a in row["curve_tokens"]}
        cells = [f"{100 * at[t]:.1f} %" if t in at else "—" for t in TOKEN_COLUMNS]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {row['train_s']:.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or reuse) the arms, then write tuning_fp32.json and print the table."""
    args = parse_args(argv)
    done = rs.run_arms(args, PRESET, ARMS, lambda n: arm_overrides(n, args.corpus),
                       "the committed fp32 tuning runs", "tuning_fp32.json", summary)
    if done is None:
        return 0
    runs, rows = done
    path = args.out_dir / "tuning_fp32.json"
    record = {"command": "python studies/demo_tuning_fp32.py", "preset": PRESET,
              "base": BASE, "runs": runs, "rows": rows}
    record["table"] = markdown_table(record)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    print(record["table"])
    return 0


if __name__ == "__main__":
    run_cli(main)
