#!/usr/bin/env python
"""Backtests of curves read as other tools' logs: what ``analyze_100k.py --backtest`` gives a user.

    python studies/foreign_backtest.py --update-docs docs/ANALYSIS.md   # writes foreign.json too
    python studies/foreign_backtest.py --from-record --update-docs docs/ANALYSIS.md  # table only

Each curve is written to a temporary folder as another tool's CSV, read back with
``zhbert.analysis.load_source`` (as ``analyze_100k.py --history`` reads it) and backtested with
``zhbert.analysis.backtest.backtest`` at ``--cuts``:

* ``public loss``: the ``step,lr,loss`` curves of ``--curves`` as they are (forecast with the
  package's prior, which was fitted on these same curves: in-sample for the prior, unlike the
  head-to-head's leave-one-curve-out scores);
* ``project accuracy as CSV``: this project's run histories (the head-to-head's, each once) with
  10 or more held-out points, as ``step,eval_accuracy,lr`` (the lr read off the training log at
  each held-out step). No standard error and no count-table baselines travel with them, so, like
  another tool's accuracy log, they get no recalibration class and keep the raw interval.

No standard error is recorded in either, so the actual's noise is estimated from the series: the
package's estimate (second differences of the last half of the points,
``zhbert.analysis.trend.tail_noise_sd``) and, for comparison, the first differences of the whole
series (``noise_sd``, the estimate before). Coverage of the 95 % intervals, mean width, mean
interval score and mean absolute error per source, estimate and cut: loss in % of the final
value, accuracy in points.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studies.forecast_peers import (  # noqa: E402
    DEFAULT_CURVES,
    _history_paths,
    _name,
    read_curves,
    unique_histories,
)
from studies.records import (  # noqa: E402
    check_run_options,
    publish,
    render_record,
    require_blocks,
)
from zhbert import history_schema as H  # noqa: E402
from zhbert.analysis import load_source, select_series  # noqa: E402
from zhbert.analysis.backtest import actual_value, backtest  # noqa: E402
from zhbert.analysis.schedule import history_schedule  # noqa: E402
from zhbert.analysis.trend import noise_sd  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402

ESTIMATES = ("tail second differences", "first differences")
SOURCES = ("public loss", "project accuracy as CSV")
DOC_BLOCK = "foreign-backtest"
UNITS = {SOURCES[0]: "% of the final value", SOURCES[1]: "accuracy points"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curves", type=Path, default=DEFAULT_CURVES,
                   help="folder searched for step,lr,loss CSV files (default ../shared/curves)")
    p.add_argument("--histories", nargs="*", type=Path, default=None, metavar="H.json",
                   help="this project's history files (default: the head-to-head's)")
    p.add_argument("--cuts", nargs="+", type=float, default=[0.2, 0.3, 0.5],
                   help="cut fractions of the last step (default 0.2 0.3 0.5)")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap resamples (default 100)")
    p.add_argument("--json", type=Path,
                   default=ROOT / "results" / "forecast_peers" / "foreign.json",
                   help="the record (default results/forecast_peers/foreign.json)")
    p.add_argument("--update-docs", type=Path, default=None, metavar="DOC.md",
                   help=f"also write the table into DOC.md's {DOC_BLOCK} block")
    p.add_argument("--from-record", action="store_true",
                   help="run nothing: render the table of the existing --json record (and "
                        "--update-docs)")
    args = p.parse_args(argv)
    check_run_options(p, args)
    return args


def write_csvs(args, folder: Path) -> list[tuple[str, str, Path]]:
    """``(source, curve name, csv path)`` of every curve, written into ``folder``."""
    out = []
    for name, steps, loss, schedule in read_curves(args.curves):
        path = folder / (name.replace("/", "_") + ".csv")
        pd.DataFrame({"step": steps, "lr": schedule.lr(steps), "loss": loss}).to_csv(
            path, index=False)
        out.append((SOURCES[0], name, path))
    histories, _ = unique_histories(_history_paths(args))
    for path, h in histories:
        if h.eval is None or len(h.eval) < 10 or H.LR not in h.train.columns:
            continue
        e, t = h.eval, h.train
        csv = folder / (_name(path).replace("/", "_") + ".csv")
        pd.DataFrame({"step": e[H.EVAL_STEPS], "eval_accuracy": e[H.EVAL_MLM_ACC],
                      "lr": np.interp(e[H.EVAL_STEPS], t[H.STEPS], t[H.LR])}).to_csv(
            csv, index=False)
        out.append((SOURCES[1], _name(path), csv))
    return out


def curve_rows(source: str, name: str, path: Path, args) -> list[dict]:
    """Both estimates' backtest rows of one CSV."""
    h = load_source(path)
    s = select_series(h)
    schedule = history_schedule(h)
    measured = actual_value(h, s)
    unit = 100.0 / abs(measured["value"]) if source == SOURCES[0] else 100.0
    rows = []
    for estimate in ESTIMATES:
        actual = measured if estimate == ESTIMATES[0] else {
            **measured, "stderr": noise_sd(s.acc), "how": "first differences"}
        b = backtest(h, s, schedule, cuts=tuple(args.cuts), n_boot=args.n_boot, actual=actual)
        for r in b["rows"]:
            row = {"source": source, "curve": name, "estimate": estimate, "cut": r["cut"],
                   "ok": r["covered"] is not None, "reason": r["reason"],
                   "stderr": actual["stderr"] * unit}
            if row["ok"]:
                row.update(covered=r["covered"], width=r["width"] * unit,
                           interval_score=r["interval_score"] * unit,
                           abs_error=abs(r["error"]) * unit,
                           recalibrated=bool((r["recalibration"] or {}).get("applied")))
            rows.append(row)
    return rows


def summary(rows: list[dict], cuts) -> dict:
    """Per source, estimate and cut (and pooled): forecasts, covered, means."""
    out: dict = {}
    for source in SOURCES:
        for estimate in ESTIMATES:
            block = {}
            for cut in [*cuts, "pooled"]:
                done = [r for r in rows if r["source"] == source and r["estimate"] == estimate
                        and r["ok"] and (cut == "pooled" or r["cut"] == cut)]
                block[str(cut)] = {"n": len(done), "covered": sum(r["covered"] for r in done),
                                   **{f"mean_{k}": (float(np.mean([r[k] for r in done]))
                                                    if done else None)
                                      for k in ("width", "interval_score", "abs_error")}}
            out.setdefault(source, {})[estimate] = block
    return out


def markdown(s: dict, units: dict | None = None) -> str:
    """The summary as a markdown table (``units``: each source's unit, named in its rows)."""
    lines = ["| source (unit) | actual's noise from | cut | covered | mean width | mean interval "
             "score | mean abs error |", "|---|---|---|---|---|---|---|"]
    for source, by in s.items():
        for estimate, block in by.items():
            for cut, b in block.items():
                if not b["n"]:
                    continue
                label = cut if cut == "pooled" else f"{float(cut):.0%}"
                unit = f" ({units[source]})" if units and source in units else ""
                lines.append(f"| {source}{unit} | {estimate} | {label} | "
                             f"{b['covered']}/{b['n']} | "
                             f"{b['mean_width']:.2f} | {b['mean_interval_score']:.2f} | "
                             f"{b['mean_abs_error']:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the CSVs, backtest each both ways, print the table, write the record."""
    argv = list(sys.argv[1:] if argv is None else argv)  # the record names the real command
    args = parse_args(argv)
    require_blocks(args.update_docs, DOC_BLOCK)  # before any work
    if args.from_record:
        md = render_record(args.json, "a foreign-backtest record", ("summary", "units"),
                           "studies/foreign_backtest.py",
                           lambda r: markdown(r["summary"], r["units"]))
        publish(args.update_docs, {DOC_BLOCK: md})
        return 0
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, name, path in write_csvs(args, Path(tmp)):
            rows += curve_rows(source, name, path, args)
    s = summary(rows, args.cuts)
    atomic_write_json(args.json, {
        "command": "python studies/foreign_backtest.py" + (" " + " ".join(argv) if argv
                                                            else ""),
        "settings": {"cuts": args.cuts, "n_boot": args.n_boot},
        "units": UNITS,
        "wall_s": time.perf_counter() - t0, "summary": s, "rows": rows})
    publish(args.update_docs, {DOC_BLOCK: markdown(s, UNITS)})
    return 0


if __name__ == "__main__":
    run_cli(main)
