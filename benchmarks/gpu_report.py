"""The GPU tables of docs/TRAINING.md, made from the committed records of benchmarks/gpu_run.sh.

python benchmarks/gpu_report.py [--results results/gpu]

Prints three markdown tables (gpu_check's cases, the short real runs against the original
study's 1.23 steps/s, the resume check) and the throughput table of
``benchmarks/train_throughput.py`` for the records at 4 x 32 and 128 x 1; a test holds the doc
to them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zhbert.errors import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_STEPS_PER_S = 1.23  # the original study: RTX 3070, batch 32 x 4 accumulation
RUNS = ("paper", "efficient", "torchrun")


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def check_table(results: Path) -> str:
    """gpu_check's cases (eager and compiled) as one table."""
    cases = _load(results / "gpu_check.json")["cases"]
    compiled = results / "gpu_check_compile.json"
    if compiled.is_file():
        cases = cases + _load(compiled)["cases"]
    lines = ["| precision | compiled | steps/s | tokens/s | MFU | peak memory | syncs/step |",
             "|" + " --- |" * 7]
    for c in cases:
        if "error" in c:
            lines.append(f"| {c['precision']} | {'yes' if c['compile'] else 'no'} | "
                         f"error: {c['error'][:60]} | | | | |")
            continue
        mfu = "n/a" if c["mfu"] is None else f"{c['mfu']:.1%}"
        lines.append(f"| {c['precision']} | {'yes' if c['compile'] else 'no'} "
                     f"| {c['steps'] / c['seconds']:.2f} | {c['tokens_per_s']:,.0f} | {mfu} "
                     f"| {c['peak_memory_bytes'] / 2**30:.2f} GiB | {c['syncs_per_step']:.2f} |")
    return "\n".join(lines)


def runs_table(results: Path) -> str:
    """The short real runs: steps, time, steps/s against the original's, held-out accuracy."""
    lines = ["| run | preset | precision | steps | training s | steps/s | x original | "
             "held-out MLM acc | process group |", "|" + " --- |" * 9]
    for name in RUNS:
        h = _load(results / "runs" / name / "training_history.json")
        m = h["meta"]
        steps, secs = h["steps"][-1], h["elapsed_s"][-1]
        lines.append(f"| {name} | {m['preset']} | {m['precision']} | {steps} | {secs:.1f} "
                     f"| {steps / secs:.2f} | {steps / secs / ORIGINAL_STEPS_PER_S:.1f}x "
                     f"| {100 * h['eval_mlm_acc'][-1]:.2f} % | {m.get('process_group')} |")
    return "\n".join(lines)


def resume_table(results: Path) -> str:
    """Killed-and-resumed vs uninterrupted, and two uninterrupted runs, at the last step."""
    lines = ["| comparison (paper, bf16, 60 steps) | tensors differing | max abs weight diff "
             "| max abs loss diff |", "|" + " --- |" * 4]
    for label, name in (("killed at step 30 and resumed vs uninterrupted", "resume_compare"),
                        ("two uninterrupted runs", "repeat_compare")):
        r = _load(results / f"{name}.json")
        lines.append(f"| {label} | {r['tensors_differing']} of {r['tensors']} "
                     f"| {r['max_abs_weight_diff']:.2e} | {r['max_abs_loss_diff']:.2e} |")
    return "\n".join(lines)


def throughput_table(results: Path) -> str:
    """train_throughput.py's own table of the eager records (4 x 32, then 128 x 1)."""
    from benchmarks.train_throughput import markdown_table

    records = _load(results / "throughput_accum4.json") + _load(results / "throughput_b128.json")
    return markdown_table(records)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "results" / "gpu",
                   help="folder of the committed gpu_run.sh records")
    args = p.parse_args(argv)
    for table in (check_table, throughput_table, runs_table, resume_table):
        print(table(args.results) + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
