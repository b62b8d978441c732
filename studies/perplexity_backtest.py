#!/usr/bin/env python
"""A perplexity forecast on its logarithm or as it is: the public loss curves as perplexities.

    python studies/perplexity_backtest.py      # writes results/forecast_peers/perplexity.json

Each ``step,lr,loss`` curve of ``--curves`` becomes a perplexity ``exp(loss)`` and is cut at
``--cuts``; its last step is forecast with its lr schedule three ways: the loss itself
(``loss``), the perplexity fitted as it is (``perplexity, fitted as is``: ``forecast_loss`` on
the perplexity), and the perplexity as the analysis forecasts it (``perplexity, on its log``:
``zhbert.analysis.lower.forecast_lower`` with a perplexity metric). Coverage of the 95 %
intervals, their mean width and the mean absolute error, in % of the final value.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studies.forecast_peers import DEFAULT_CURVES, read_curves  # noqa: E402
from zhbert.analysis.loss_forecast import forecast_loss  # noqa: E402
from zhbert.analysis.lower import forecast_lower  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402

WAYS = ("loss", "perplexity, fitted as is", "perplexity, on its log")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curves", type=Path, default=DEFAULT_CURVES,
                   help="folder searched for step,lr,loss CSV files (default ../shared/curves)")
    p.add_argument("--cuts", nargs="+", type=float, default=[0.2, 0.3, 0.5],
                   help="cut fractions of the last step (default 0.2 0.3 0.5)")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap resamples (default 100)")
    p.add_argument("--json", type=Path,
                   default=ROOT / "results" / "forecast_peers" / "perplexity.json",
                   help="the record (default results/forecast_peers/perplexity.json)")
    return p.parse_args(argv)


def _forecast(way: str, steps, loss, schedule, target: float, n_boot: int) -> dict:
    if way == "loss":
        return forecast_loss(steps, loss, schedule, target, n_boot=n_boot)
    if way == WAYS[1]:
        return forecast_loss(steps, np.exp(loss), schedule, target, n_boot=n_boot)
    return forecast_lower(steps, np.exp(loss), schedule, target, n_boot=n_boot,
                          metric="perplexity")


def summary(rows: list[dict]) -> dict:
    """Per way: forecasts, covered, mean width and mean absolute error (% of the final value)."""
    out = {}
    for way in WAYS:
        done = [r for r in rows if r["way"] == way and r["ok"]]
        out[way] = {"n": len(done), "covered": sum(r["covered"] for r in done),
                    "mean_width": float(np.mean([r["width"] for r in done])) if done else None,
                    "mean_abs_error": (float(np.mean([abs(r["error"]) for r in done]))
                                       if done else None)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Forecast every curve's cuts three ways, print the summary, write the record."""
    argv = list(sys.argv[1:] if argv is None else argv)  # the record names the real command
    args = parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    for name, steps, loss, schedule in read_curves(args.curves):
        for q in args.cuts:
            m = steps <= q * steps[-1]
            for way in WAYS:
                f = _forecast(way, steps[m], loss[m], schedule, float(steps[-1]), args.n_boot)
                actual = float(loss[-1] if way == "loss" else np.exp(loss[-1]))
                row = {"curve": name, "cut": q, "way": way, "ok": bool(f["ok"])}
                if f["ok"]:
                    row.update(covered=bool(f["lower"] <= actual <= f["upper"]),
                               width=100 * (f["upper"] - f["lower"]) / actual,
                               error=100 * (f["value"] - actual) / actual)
                rows.append(row)
    s = summary(rows)
    for way, b in s.items():
        print(f"{way:26s} covered {b['covered']} of {b['n']}, mean width {b['mean_width']:.2f} %,"
              f" mean abs error {b['mean_abs_error']:.2f} %")
    atomic_write_json(args.json, {
        "command": "python studies/perplexity_backtest.py" + (" " + " ".join(argv) if argv
                                                               else ""),
        "settings": {"cuts": args.cuts, "n_boot": args.n_boot},
        "wall_s": time.perf_counter() - t0, "summary": s, "rows": rows})
    return 0


if __name__ == "__main__":
    run_cli(main)
