#!/usr/bin/env python
"""Time the whole analysis (bootstrap included) on synthetic 1K- and 100K-point histories.

    PYTHONPATH=. python benchmarks/analysis_speed.py --sizes 1000 100000 --backtest
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
from zhbert.analysis.backtest import DEFAULT_CUTS
from zhbert.analysis.forecast import DEFAULT_N_BOOT
from zhbert.analysis.synthetic import make_history
from zhbert.errors import UserError, run_cli
from zhbert.io_utils import atomic_write_json


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Benchmark zhbert.analysis.analyze.")
    p.add_argument("--sizes", nargs="+", type=int, default=[1000, 100_000],
                   help="history lengths to time (default 1000 100000)")
    p.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT,
                   help=f"bootstrap resamples (default {DEFAULT_N_BOOT})")
    p.add_argument("--backtest", action="store_true",
                   help="time the analysis with its backtest too (cuts 10/20/30/50%%)")
    p.add_argument("--json", type=Path, default=None, help="also write the timings here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write each synthetic history to a temp file, then time load + analyze."""
    args = parse_args(argv)
    if any(n < 10 for n in args.sizes):
        raise UserError("--sizes: every size must be at least 10")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"history_{n}.json"
            path.write_text(json.dumps(make_history(n=n, rho=0.6, seed=1)))
            t0 = time.perf_counter()
            analyze(load_history(path), n_boot=args.n_boot, seed=0,
                    backtest_cuts=DEFAULT_CUTS if args.backtest else None)
            dt = time.perf_counter() - t0
            rows.append({"n": n, "n_boot": args.n_boot, "backtest": args.backtest,
                         "seconds": round(dt, 2)})
            print(f"n={n:>7}  n_boot={args.n_boot}  backtest={args.backtest}  {dt:6.2f} s")
    print(f"(cpu count {os.cpu_count()})")
    if args.json:
        atomic_write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    run_cli(main)
