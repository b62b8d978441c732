#!/usr/bin/env python
"""Use the analysis package directly: load a history, correlate, fit, predict with an interval.

    python examples/load_and_analyze.py --history runs/demo/training_history.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zhbert.analysis import evaluate_family, load_history, select_series
from zhbert.analysis.correlation import pearson, spearman
from zhbert.analysis.curves import choose_best, fit_all
from zhbert.analysis.forecast import forecast_final
from zhbert.analysis.schedule import history_schedule
from zhbert.baselines import unigram_floor
from zhbert.errors import UserError, run_cli


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description="Load a training history and analyse it with the API.")
    p.add_argument("--history", required=True, type=Path, help="training_history.json to analyse")
    p.add_argument("--step", type=float, default=None,
                   help="step at which to forecast accuracy (default: the planned last step of "
                        "the lr schedule; a step past it is refused)")
    p.add_argument("--n-boot", type=int, default=200,
                   help="bootstrap replicates of the forecast interval; 0: no bootstrap, the "
                        "forecast without an interval (default 200)")
    return p.parse_args(argv)


def _interval(forecast: dict) -> str:
    """The forecast's 95% interval as text, or why it has none (no or too few bootstrap refits)."""
    lo, hi = forecast["ci95"]
    if lo is not None and hi is not None:
        return f"95% interval {lo:.4f}..{hi:.4f}"
    if not forecast["n_boot"]:
        return "no 95% interval with --n-boot 0, no bootstrap"
    return f"no 95% interval from {forecast['n_refits']} bootstrap refits, too few: raise --n-boot"


def main(argv: Sequence[str] | None = None) -> int:
    """Walk through the API and print what each call returns."""
    args = parse_args(argv)
    if args.step is not None and args.step <= 0:
        raise UserError(f"--step must be positive (got {args.step:g})")
    if args.n_boot < 0:
        raise UserError(f"--n-boot must be >= 0, 0 for no bootstrap (got {args.n_boot})")
    history = load_history(args.history)           # UserError on bad input
    for w in history.warnings:                     # dropped rows, percentages read as fractions
        print(f"warning: {w}", file=sys.stderr)
    df = history.train                             # a pandas DataFrame, one row per logged step
    print(f"train frame: {len(df)} rows, columns {list(df.columns)}")
    print(df.tail(3).to_string(index=False))
    series = select_series(history, "auto")        # held-out series when present
    print(f"\nanalysing the {series.kind} series ({series.n} points)")
    p = pearson(series.steps, series.acc)
    print(f"Pearson r = {p['r']:.4f}, 95% CI [{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]; "
          f"Spearman rho = {spearman(series.steps, series.acc)['rho']:.4f}")
    fits = fit_all(series.steps, series.acc)
    best = choose_best(fits)
    if best is None:
        raise UserError(f"{args.history}: no curve family could be fitted")
    print(f"best fit: {best['family']} {best['params']}")
    last = float(series.steps[-1])
    print(f"fitted accuracy at the last step ({last:,.0f}): "
          f"{evaluate_family(best['family'], best['params'], np.array([last]))[0]:.4f}")
    schedule = history_schedule(history)           # planned lr schedule (meta or lr column)
    x = forecast_final(series.steps, series.acc, schedule, args.step, n_boot=args.n_boot,
                       floor=unigram_floor(history.meta))  # no forecast on the unigram plateau
    if not x["ok"]:
        raise UserError(f"{args.history}: no forecast ({x['reason']})")
    used = sum(1 for f in x["families"].values() if f["weight"] > 0)
    print(f"forecast accuracy at step {x['target_step']:,.0f} ({x['target_source']}): "
          f"{x['value']:.4f} ({_interval(x)}; model-averaged over {used} curve families)")
    return 0


if __name__ == "__main__":
    run_cli(main)
