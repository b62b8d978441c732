#!/usr/bin/env python
"""Calibration of the forecast: coverage, width and error of its 95% intervals over many backtests.

    python studies/forecast_calibration.py --histories results/training_history.json \\
        runs/*/training_history.json --synthetic 60 --json calibration.json

Every history file is backtested (``zhbert.analysis.backtest``) on its held-out series (when it
has at least 10 points) and on its training-batch series: cut at each ``--cuts`` fraction, its
last step forecast, compared with the measured value there. Synthetic histories
(``zhbert.analysis.synthetic.make_scheduled_history``: a known true curve that is not one of the
forecast families, cosine / linear / constant schedules, AR(1) noise) are forecast from the same
cuts and compared with the TRUE final accuracy (interval for the curve). Prints a markdown table
per (source, series, cut) and writes every row as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the repository root: zhbert without pip install -e
    sys.path.insert(0, str(ROOT))

from zhbert import history_schema as H  # noqa: E402
from zhbert.analysis import load_history, select_series  # noqa: E402
from zhbert.analysis.backtest import backtest  # noqa: E402
from zhbert.analysis.forecast import DEFAULT_N_BOOT, forecast_final  # noqa: E402
from zhbert.analysis.history import MIN_POINTS  # noqa: E402
from zhbert.analysis.schedule import Schedule, history_schedule  # noqa: E402
from zhbert.analysis.synthetic import make_scheduled_history  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402

KINDS = ("cosine", "linear", "constant")
WARMUPS = (0.02, 0.05, 0.1)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--histories", nargs="*", default=[], type=Path, metavar="H.json",
                   help="training histories to backtest (this project's or the original format)")
    add_calibration_args(p, synthetic=0)
    p.add_argument("--json", type=Path, default=None, help="write every row and the table here")
    return p.parse_args(argv)


def add_calibration_args(p: argparse.ArgumentParser, synthetic: int) -> None:
    """The options every calibration front end shares: synthetic count, cuts, resamples, seed."""
    p.add_argument("--synthetic", type=int, default=synthetic, metavar="N",
                   help=f"synthetic histories with known truth to forecast too (default "
                        f"{synthetic})")
    p.add_argument("--cuts", nargs="+", type=float, default=[0.2, 0.3, 0.5],
                   help="cut fractions of the last step (default 0.2 0.3 0.5)")
    p.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT,
                   help=f"bootstrap resamples per forecast (default {DEFAULT_N_BOOT})")
    p.add_argument("--seed", type=int, default=0, help="first synthetic seed (default 0)")


def history_rows(path: Path, cuts, n_boot: int, source: str = "real") -> list[dict]:
    """Backtest rows of one history file, for each usable series, labelled ``source``."""
    h = load_history(path)
    schedule = history_schedule(h)
    kinds = ["train"] + (["eval"] if h.eval is not None and len(h.eval) >= MIN_POINTS else [])
    rows = []
    for kind in kinds:
        # the forecaster's own intervals: the package's recalibration was fitted on these
        b = backtest(h, select_series(h, kind), schedule, cuts, n_boot, recalibrate=False)
        for r in b["rows"]:
            rows.append({"source": source, "history": str(path), "series": kind, "cut": r["cut"],
                         "forecast": r["forecast"], "ci95": r["ci95"], "actual":
                         b["actual"]["value"], "error": r["error"], "covered": r["covered"],
                         "reason": r["reason"]})
    return rows


def synthetic_case(i: int) -> tuple[Schedule, dict]:
    """Schedule and noise settings of synthetic history ``i`` (cycles through the variants)."""
    kind = KINDS[i % len(KINDS)]
    warmup = int(WARMUPS[(i // len(KINDS)) % len(WARMUPS)] * 10_000)
    held_out = (i // 2) % 2 == 1
    settings = ({"n": 1000, "noise": 0.03, "rho": 0.5, "eval_every": 25} if held_out else
                {"n": 1000, "noise": 0.03, "rho": 0.5})
    return Schedule(1e-3, warmup, 10_000, kind), {**settings, "held_out": held_out}


def synthetic_rows(count: int, first_seed: int, cuts, n_boot: int) -> list[dict]:
    """Forecast rows of ``count`` synthetic histories against their true final accuracy."""
    rows = []
    for i in range(count):
        seed = first_seed + i
        schedule, s = synthetic_case(i)
        held_out = s.pop("held_out")
        h = make_scheduled_history(schedule, seed=seed, **s)
        steps, acc = ((h[H.EVAL_STEPS], h[H.EVAL_MLM_ACC]) if held_out else
                      (h[H.STEPS], h[H.MLM_ACC]))
        steps, acc = np.asarray(steps, float), np.asarray(acc, float)
        truth = h[H.META_KEY]["truth"]["final_acc"]
        for q in cuts:
            m = steps <= q * steps[-1]
            f = forecast_final(steps[m], acc[m], schedule, steps[-1], n_boot=n_boot, seed=seed)
            ok = f["ok"] and None not in f["ci95"]
            rows.append({"source": f"synthetic {schedule.kind}", "history": f"seed {seed}",
                         "series": "eval" if held_out else "train", "cut": q,
                         "forecast": f["value"], "ci95": f["ci95"], "actual": truth,
                         "error": f["value"] - truth if ok else None,
                         "covered": bool(f["ci95"][0] <= truth <= f["ci95"][1]) if ok else None,
                         "reason": f["reason"]})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """One line per (source, series, cut): forecasts made, coverage, median width, MAE, bias."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["source"], r["series"], r["cut"]), []).append(r)
    table = []
    for (source, series, cut), rs in sorted(groups.items()):
        done = [r for r in rs if r["covered"] is not None]
        err = np.array([r["error"] for r in done]) * 100
        width = np.array([r["ci95"][1] - r["ci95"][0] for r in done]) * 100
        table.append({"source": source, "series": series, "cut": cut, "n": len(rs),
                      "forecast": len(done),
                      "coverage": float(np.mean([r["covered"] for r in done])) if done else None,
                      "median_width": float(np.median(width)) if done else None,
                      "mae": float(np.mean(np.abs(err))) if done else None,
                      "bias": float(np.mean(err)) if done else None})
    return table


def pooled(rows: list[dict], min_cut: float = 0.2) -> dict:
    """Coverage, median width and mean absolute error (points) over every forecast at cuts >=
    ``min_cut``; the 50% held-out point error (mean and worst, points)."""
    done = [r for r in rows if r["covered"] is not None and r["cut"] >= min_cut - 1e-9]
    half = [abs(r["error"]) * 100 for r in done if r["series"] == "eval"
            and abs(r["cut"] - 0.5) < 1e-9]
    width = [(r["ci95"][1] - r["ci95"][0]) * 100 for r in done]
    return {"coverage_cuts_from_20pct": float(np.mean([r["covered"] for r in done])) if done else None,
            "n_forecasts": len(done), "n_covered": int(sum(r["covered"] for r in done)),
            "median_width_points": float(np.median(width)) if done else None,
            "mae_points": float(np.mean([abs(r["error"]) * 100 for r in done])) if done else None,
            "n_eval_50pct": len(half),
            "mae_50pct_eval_points": float(np.mean(half)) if half else None,
            "max_abs_error_50pct_eval_points": float(np.max(half)) if half else None}


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def markdown(table: list[dict]) -> str:
    """The docs table."""
    lines = ["| source | series | cut | forecasts / cuts | coverage | median width | MAE | bias |",
             "|---|---|---|---|---|---|---|---|"]
    for t in table:
        lines.append(f"| {t['source']} | {t['series']} | {t['cut']:.0%} | {t['forecast']} / "
                     f"{t['n']} | {_fmt(t['coverage'], '.0%')} | {_fmt(t['median_width'], '.1f')} "
                     f"| {_fmt(t['mae'], '.2f')} | {_fmt(t['bias'], '+.2f')} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Backtest everything, print the table, write the JSON."""
    args = parse_args(argv)
    if not all(0 < c < 1 for c in args.cuts):
        raise UserError(f"--cuts must be fractions in (0, 1) (got {args.cuts})")
    if not args.histories and args.synthetic <= 0:
        raise UserError("nothing to calibrate: give --histories and/or --synthetic N")
    t0 = time.perf_counter()
    rows = []
    for path in args.histories:
        rows += history_rows(path, args.cuts, args.n_boot)
    rows += synthetic_rows(args.synthetic, args.seed, args.cuts, args.n_boot)
    table = summarise(rows)
    summary = pooled(rows)
    print(markdown(table))
    print(f"\npooled: {summary} ({time.perf_counter() - t0:.0f} s)")
    if args.json:
        atomic_write_json(args.json, {"args": {k: str(v) if isinstance(v, Path) else v
                                               for k, v in vars(args).items()
                                               if k not in ("histories", "json")},
                                      "histories": [str(p) for p in args.histories],
                                      "summary": summary, "table": table, "rows": rows})
    return 0


if __name__ == "__main__":
    run_cli(main)
