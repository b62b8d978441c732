#!/usr/bin/env python
"""Time the full figure set for a synthetic 1,000-point original-format history.

Reports the analysis (``zhbert.analysis.analyze``) and the drawing separately, and their sum::

    PYTHONPATH=. python benchmarks/plots_speed.py --n-points 1000 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from zhbert.analysis import analyze, load_history
from zhbert.analysis.synthetic import make_original_like
from zhbert.errors import UserError, run_cli
from zhbert.io_utils import atomic_write_json

BUDGET_S = 20.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Benchmark zhbert.plots (all figures).")
    p.add_argument("--repeat", type=int, default=2,
                   help="timed repetitions; the first also pays font discovery (default 2)")
    p.add_argument("--format", default="png", choices=["png", "svg", "pdf"],
                   help="figure format (default png)")
    p.add_argument("--n-boot", type=int, default=500,
                   help="bootstrap replicates of the analysis (default 500, as analyze)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="keep the figures here (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None, help="also write the timings here")
    return p.parse_args(argv)


def _one_run(path: Path, out_dir: Path, fmt: str, n_boot: int) -> dict:
    from zhbert.plots import render_all

    t0 = time.perf_counter()
    history = load_history(path)
    other = load_history(path)  # the comparison figure needs a second run; reuse the same file
    analysis = analyze(history, n_boot=n_boot, seed=0, compare=[("copy", other)], label="main")
    t1 = time.perf_counter()
    paths = render_all(history, analysis, out_dir, fmt=fmt, compare=[("copy", other)],
                       label="main")
    t2 = time.perf_counter()
    return {"analysis_s": round(t1 - t0, 2), "figures_s": round(t2 - t1, 2),
            "total_s": round(t2 - t0, 2), "n_figures": len(paths),
            "bytes": {p.name: p.stat().st_size for p in paths}}


def main(argv: Sequence[str] | None = None) -> int:
    """Write the synthetic history, then time analyse + draw ``--repeat`` times."""
    args = parse_args(argv)
    if args.repeat < 1:
        raise UserError("--repeat must be at least 1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "training_history.json"
        path.write_text(json.dumps(make_original_like(seed=0)), encoding="utf-8")
        out_dir = args.out_dir or Path(tmp) / "figures"
        for i in range(args.repeat):
            row = _one_run(path, out_dir, args.format, args.n_boot)
            rows.append(row)
            print(f"run {i + 1}: analysis {row['analysis_s']:6.2f} s  figures "
                  f"{row['figures_s']:6.2f} s ({row['n_figures']} files)  total "
                  f"{row['total_s']:6.2f} s  (budget {BUDGET_S:.0f} s)")
        print("sizes (bytes):", rows[-1]["bytes"])
    print(f"(cpu count {os.cpu_count()}, n_boot {args.n_boot}, format {args.format})")
    if args.json:
        atomic_write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    run_cli(main)
