#!/usr/bin/env python
"""Tissue's law fitted to each whole public loss curve: how large is its annealing term C?

    python studies/tissue_fits.py      # writes results/forecast_peers/tissue_fits.json

The synthetic loss curves of the head-to-head (``zhbert.analysis.synthetic.make_loss_curve``)
follow Tissue et al. 2024's ``L0 + A S1^-alpha - C S2`` with ``C`` drawn from
``LOSS_C_RANGE``. This fits that law (``tissue_s1s2``, every parameter free, as the
head-to-head's peer) to every point of each ``step,lr,loss`` curve of ``--curves`` and reports
``C`` per schedule (the file name before its first ``_``), beside the generator's range, in the
same units (1,000 peak-lr steps).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studies.forecast_peers import DEFAULT_CURVES, read_curves  # noqa: E402
from zhbert.analysis.loss_forecast import forecast_loss  # noqa: E402
from zhbert.analysis.synthetic import LOSS_C_RANGE  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curves", type=Path, default=DEFAULT_CURVES,
                   help="folder searched for step,lr,loss CSV files (default ../shared/curves)")
    p.add_argument("--json", type=Path,
                   default=ROOT / "results" / "forecast_peers" / "tissue_fits.json",
                   help="the record (default results/forecast_peers/tissue_fits.json)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Fit every curve, print C per schedule, write the record."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    fits = {}
    for name, steps, loss, schedule in read_curves(args.curves):
        f = forecast_loss(steps, loss, schedule, float(steps[-1]), family="tissue_s1s2",
                          n_boot=10)
        if f["ok"]:
            fits[name] = f["params"]
    by: dict[str, list[float]] = {}
    for name, p in fits.items():
        by.setdefault(Path(name).name.split("_")[0], []).append(p["C"])
    summary = {k: {"n": len(v), "min": float(np.min(v)), "max": float(np.max(v))}
               for k, v in sorted(by.items())}
    gen = list(LOSS_C_RANGE)
    print(f"synthetic generator: C in [{gen[0]:g}, {gen[1]:g}]")
    for k, b in summary.items():
        print(f"{k:9s} {b['n']} curves: C from {b['min']:.4f} to {b['max']:.4f}")
    atomic_write_json(args.json, {
        "command": "python studies/tissue_fits.py" + (" " + " ".join(argv) if argv else ""),
        "generator_C": gen, "by_schedule": summary, "fits": fits})
    return 0


if __name__ == "__main__":
    run_cli(main)
