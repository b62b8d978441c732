#!/usr/bin/env python
"""Head to head: every forecast method on the same cuts of the same curves, intervals scored.

    python studies/forecast_peers.py            # writes results/forecast_peers/peers.{json,md}
    python studies/forecast_peers.py --quick --curves DIR --histories H.json --json out.json

Each curve is cut at each ``--cuts`` fraction of its last step and its last step is forecast by

* ``ours``: for loss, ``zhbert.analysis.loss_forecast.forecast_loss`` (the multi-power law with a
  prior calibrated on OTHER curves: on the public curves leave-one-curve-out, elsewhere the
  package's prior); for accuracy, ``zhbert.analysis.forecast.forecast_final``;
* the published laws fitted on the cut curve alone, every parameter free: ``tissue_s1s2``,
  ``multi_power``, ``power_law_steps``, and ``last_value`` (the mean of the last 10 % of points).
  They publish point forecasts only; each gets its interval by one shared method
  (``forecast_loss`` with that ``family``): a circular block bootstrap of its own fit's
  residuals, refitted per resample, plus measurement noise. On accuracy they forecast the error
  rate 1 - acc.

Every interval is for one measured point at the last step (curve uncertainty + measurement
noise); the actual is that point (a training-batch series: the mean of its last 5 %). Sources,
reported separately: the public loss curves (``--curves``: ``step,lr,loss`` CSVs, see
../shared/curves/README.md), this project's run histories (``--histories``: accuracy and loss of
the same series, held-out when it has 10+ points), and synthetic curves with known laws
(``--synthetic``). Metrics per method, cut and pooled: coverage of the nominal 95 % intervals
(with the binomial band of the count), mean width, mean interval score (Gneiting & Raftery 2007)
and mean absolute point error; loss in % of the actual final value, accuracy in points.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studies.peers_recalibration import calibration_records, recalibrate_rows  # noqa: E402, F401
from studies.peers_report import (  # noqa: E402, F401 - wins and summarise re-exported
    LEVEL,
    METHODS,
    hindsight_markdown,
    markdown_table,
    summarise,
    targets,
    targets_markdown,
    wins,
)
from studies.records import (  # noqa: E402
    check_run_options,
    publish,
    render_record,
    require_blocks,
)
from studies.synthetic_sets import (  # noqa: E402
    SYNTHETIC_LOSS_NOISE,
    synthetic_accuracy,
    synthetic_loss,
)
from zhbert import history_schema as H  # noqa: E402
from zhbert.analysis import load_history, recalibrate, select_series  # noqa: E402
from zhbert.analysis.backtest import actual_value  # noqa: E402
from zhbert.analysis.forecast import forecast_final  # noqa: E402
from zhbert.analysis.history import Series  # noqa: E402
from zhbert.analysis.loss_forecast import forecast_loss  # noqa: E402
from zhbert.analysis.loss_laws import TabulatedSchedule  # noqa: E402
from zhbert.analysis.loss_prior import calibrate_prior, default_prior  # noqa: E402
from zhbert.analysis.schedule import history_schedule  # noqa: E402
from zhbert.baselines import unigram_floor  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import (  # noqa: E402
    atomic_write_json,
    atomic_write_text,
)

DEFAULT_CURVES = ROOT.parent / "shared" / "curves"
DEFAULT_HISTORIES = ("results/training_history.json", "results/demo_*/training_history.json",
                     "results/study/history_*.json", "results/tuning*/*_history.json",
                     "results/calibration/*_history.json")
DEFAULT_JSON = ROOT / "results" / "forecast_peers" / "peers.json"
DOC_BLOCK = "peers"
HINDSIGHT_BLOCK = "peers-hindsight"
DOC_BLOCKS = (DOC_BLOCK, HINDSIGHT_BLOCK)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--curves", type=Path, default=DEFAULT_CURVES,
                   help="folder searched for step,lr,loss CSV files (default ../shared/curves)")
    p.add_argument("--histories", nargs="*", type=Path, default=None, metavar="H.json",
                   help="this project's history files (default: the demo, study, tuning and "
                        "calibration runs under results/)")
    p.add_argument("--synthetic", type=int, default=8, metavar="N",
                   help="synthetic accuracy histories and synthetic loss curves, N of each "
                        "(default 8)")
    p.add_argument("--cuts", nargs="+", type=float, default=[0.2, 0.3, 0.5],
                   help="cut fractions of the last step (default 0.2 0.3 0.5)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of every bootstrap (default 0)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 20 resamples, at most 2 synthetic curves of each kind")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON,
                   help="the record (default results/forecast_peers/peers.json); the markdown "
                        "table is written beside it (.md)")
    p.add_argument("--update-docs", type=Path, default=None, metavar="DOC.md",
                   help=f"also write the tables and the targets into DOC.md's {DOC_BLOCK} block")
    p.add_argument("--from-record", action="store_true",
                   help="run nothing: render the tables of the existing --json record (and "
                        "--update-docs)")
    p.add_argument("--write-calibration", type=Path, default=None, metavar="CAL.json",
                   help="only fit the forecast interval calibration on ours' backtests of the "
                        "--histories at the --cuts and write it here (the package's is "
                        "zhbert/analysis/interval_calibration.json)")
    p.add_argument("--write-prior", type=Path, default=None, metavar="PRIOR.json",
                   help="only fit the loss forecast's prior on every --curves CSV and write it "
                        "here (the package's is zhbert/analysis/loss_prior.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.n_boot, args.synthetic = min(args.n_boot, 20), min(args.synthetic, 2)
    check_run_options(p, args)
    return args


def read_curves(folder: Path) -> list[tuple[str, np.ndarray, np.ndarray, TabulatedSchedule]]:
    """Every ``step,lr,loss`` CSV under ``folder``: ``(name, steps, loss, schedule)``."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of loss curves (--curves)")
    out = []
    for path in sorted(folder.rglob("*.csv")):
        frame = pd.read_csv(path)
        if not {"step", "lr", "loss"} <= set(frame.columns):
            raise UserError(f"{path}: expected columns step,lr,loss (found "
                            f"{','.join(map(str, frame.columns))})")
        steps = frame["step"].to_numpy(np.float64)
        out.append((str(path.relative_to(folder).with_suffix("")), steps,
                    frame["loss"].to_numpy(np.float64),
                    TabulatedSchedule(steps, frame["lr"].to_numpy(np.float64),
                                      source=f"lr column of {path.name}")))
    return out


def _row(source: str, curve: str, method: str, cut: float, f: dict, actual: float,
         scale: float, cls: str | None = None) -> dict:
    """One forecast, scaled (loss: % of the actual; accuracy: points); ``cls`` the
    recalibration class of ours (``zhbert.analysis.recalibrate``; None: none applies)."""
    ok = bool(f["ok"])
    row = {"source": source, "curve": curve, "method": method, "cut": cut,
           "n_points": f["n_points"], "ok": ok, "reason": f["reason"],
           "value": f["value"] * scale if ok else None,
           "lower": f["lower"] * scale if ok else None,
           "upper": f["upper"] * scale if ok else None, "actual": actual * scale}
    if method == "ours":
        row.update(cls=cls, scale=scale, raw_lower=row["lower"], raw_upper=row["upper"],
                   recalibrated=False)
    return row


def _no_class(cut_step: float) -> None:
    return None


def loss_rows(source: str, curve: str, steps, values, schedule, actual: float,
              noise_sd: float | None, prior: dict, args, cls_at=_no_class,
              methods=METHODS) -> list[dict]:
    """Every method on every cut of one lower-is-better series; ``cls_at(cut step)`` gives
    ours' recalibration class."""
    rows, scale = [], 100.0 / abs(actual)
    for q in args.cuts:
        m = steps <= q * steps[-1]
        for method in methods:
            f = forecast_loss(steps[m], values[m], schedule, steps[-1], noise_sd=noise_sd,
                              n_boot=args.n_boot, seed=args.seed, prior=prior,
                              family="auto" if method == "ours" else method)
            cls = cls_at(float(steps[m][-1])) if method == "ours" and m.any() else None
            rows.append(_row(source, curve, method, q, f, actual, scale, cls))
    return rows


def accuracy_rows(source: str, curve: str, steps, acc, schedule, actual: float,
                  noise_sd: float | None, floor: float | None, args, cls_at=_no_class,
                  methods=METHODS, families=None, family_values=False) -> list[dict]:
    """``forecast_final`` and every peer (on 1 - acc) on every cut of one accuracy series;
    ``cls_at(cut step)`` gives ours' recalibration class. ``families``: ours' candidate
    families (default all); ``family_values``: ours' row also holds each family's forecast and
    weight (``families``: name -> [value in points or None, weight])."""
    rows = []
    for q in args.cuts:
        m = steps <= q * steps[-1]
        f = forecast_final(steps[m], acc[m], schedule, steps[-1], n_boot=args.n_boot,
                           seed=args.seed, measurement_sd=noise_sd, floor=floor,
                           families=families)
        ok = f["ok"] and None not in f["ci95"]
        f = {**f, "ok": ok, "lower": f["ci95"][0], "upper": f["ci95"][1]}
        rows.append(_row(source, curve, "ours", q, f, actual, 100.0,
                         cls_at(float(steps[m][-1])) if m.any() else None))
        if family_values:
            rows[-1]["families"] = {
                k: [None if d.get("value") is None else 100.0 * d["value"], d.get("weight") or 0.0]
                for k, d in (f.get("families") or {}).items()}
        for method in methods[1:]:
            g = forecast_loss(steps[m], 1.0 - acc[m], schedule, steps[-1], noise_sd=noise_sd,
                              n_boot=args.n_boot, seed=args.seed, family=method)
            if g["ok"]:
                g = {**g, "value": 1 - g["value"], "lower": 1 - g["upper"],
                     "upper": 1 - g["lower"]}
            rows.append(_row(source, curve, method, q, g, actual, 100.0))
    return rows


NO_LR = "public loss curves, lr withheld"


def public_rows(curves, args, sources=("public loss curves", NO_LR),
                methods=METHODS) -> list[dict]:
    """The public loss curves, ours with a prior calibrated on the other curves; in the source
    :data:`NO_LR` the same curves forecast without their lr column (a loss-only export), ours
    of class ``recalibrate.NO_SCHEDULE``."""
    rows = []
    for name, steps, loss, schedule in curves:
        prior = calibrate_prior(curves, exclude=name)
        for source in sources:
            blind = source == NO_LR
            rows += loss_rows(source, name, steps, loss, None if blind else schedule,
                              float(loss[-1]), None, prior, args,
                              (lambda at: recalibrate.NO_SCHEDULE) if blind else _no_class,
                              methods)
    return rows


def unique_histories(paths: list[Path]) -> tuple[list[tuple[Path, object]], dict]:
    """The loaded histories, each chosen series once (a file copied under another name, e.g.
    ``results/training_history.json`` beside the study's, would count twice and leak into its
    own leave-one-out calibration): ``[(path, history)]`` and ``{kept: [duplicates]}``."""
    seen, kept, dups = {}, [], {}
    for path in paths:
        h = load_history(path)
        s = select_series(h, "auto")
        key = hashlib.sha256(s.steps.tobytes() + s.acc.tobytes()).hexdigest()
        if key in seen:
            dups.setdefault(_name(seen[key]), []).append(_name(path))
            continue
        seen[key] = path
        kept.append((path, h))
    return kept, dups


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def history_rows(histories: list[tuple[Path, object]], args, methods=METHODS,
                 with_loss=True, **accuracy_options) -> list[dict]:
    """Accuracy and (``with_loss``) loss of each history's chosen series (held-out when it has 10+
    points), ours with its recalibration class (``zhbert.analysis.recalibrate.history_class``);
    ``accuracy_options`` go to :func:`accuracy_rows`."""
    rows, prior = [], default_prior()
    for path, h in histories:
        s = select_series(h, "auto")
        schedule = history_schedule(h)
        if schedule is not None and schedule.end is not None and s.steps[-1] > schedule.end:
            schedule = schedule.with_continuation("constant")
        acc = actual_value(h, s)
        name = _name(path)
        rows += accuracy_rows("project accuracy", name, s.steps, s.acc, schedule, acc["value"],
                              acc["stderr"], unigram_floor(h.meta), args,
                              lambda at, s=s, h=h: recalibrate.history_class(h, s, at), methods,
                              **accuracy_options)
        frame, key = (h.eval, H.EVAL_LOSS) if s.kind == "eval" else (h.train, H.LOSS)
        if not with_loss or key not in frame.columns:
            continue
        loss = frame[key].to_numpy(np.float64)
        ls = Series(s.kind, s.steps, loss, key, False)
        if s.kind == "eval":
            actual, noise = float(loss[-1]), None
        else:
            a = actual_value(h, Series("train", s.steps, loss))
            actual, noise = a["value"], a["stderr"]
        rows += loss_rows("project loss", name, s.steps, loss, schedule, actual, noise, prior,
                          args, lambda at, ls=ls, h=h: recalibrate.history_class(h, ls, at),
                          methods)
    return rows


def synthetic_rows(count: int, args) -> list[dict]:
    """``count`` synthetic accuracy histories (:func:`synthetic_accuracy`) and ``count`` loss
    curves (:func:`synthetic_loss`), seeds ``args.seed`` on."""
    rows, prior = [], default_prior()
    for i in range(count):
        name, steps, acc, plan, stderr = synthetic_accuracy(i, args.seed + i)
        rows += accuracy_rows("synthetic accuracy", name, steps, acc, plan, float(acc[-1]),
                              stderr, None, args)
        name, steps, loss, sched = synthetic_loss(i, args.seed + i)
        rows += loss_rows("synthetic loss", name, steps, loss, sched, float(loss[-1]),
                          SYNTHETIC_LOSS_NOISE, prior, args)
    return rows


def _history_paths(args) -> list[Path]:
    if args.histories is not None:
        return list(args.histories)
    return sorted({p for pattern in DEFAULT_HISTORIES for p in ROOT.glob(pattern)})


def write_calibration(path: Path, args) -> None:
    """Fit the package's interval calibration on ours' backtests of every history and of the
    public curves with their lr withheld, and write it."""
    histories, _ = unique_histories(_history_paths(args))
    curves = read_curves(args.curves)
    rows = history_rows(histories, args, methods=("ours",))
    rows += public_rows(curves, args, sources=(NO_LR,), methods=("ours",))
    cal = recalibrate.fit(calibration_records(rows), LEVEL)
    cal.update(cuts=list(args.cuts), n_boot=args.n_boot, seed=args.seed,
               curves=[_name(p) for p, _ in histories] + [c[0] for c in curves],
               command="python studies/forecast_peers.py --write-calibration " + str(path))
    atomic_write_json(path, cal)
    print(f"wrote {path} ({len(histories)} histories; classes: "
          + ", ".join(f"{k} n={v['n']}" for k, v in cal["classes"].items()) + ")")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every method on every source, print the tables, write the record and the tables."""
    argv = list(sys.argv[1:] if argv is None else argv)  # the record names the real command
    args = parse_args(argv)
    t0, c0 = time.perf_counter(), time.process_time()
    if args.write_calibration is not None:
        write_calibration(args.write_calibration, args)
        return 0
    require_blocks(args.update_docs, *DOC_BLOCKS)  # before any work
    if args.from_record:
        rendered = render_record(args.json, "a head-to-head record",
                                 ("summary", "targets", "rows"), "studies/forecast_peers.py",
                                 lambda r: (markdown_table(r), doc_tables(r)))
        publish_tables(*rendered, args)
        return 0
    curves = read_curves(args.curves)
    if args.write_prior is not None:
        prior = calibrate_prior(curves)
        prior["command"] = f"python studies/forecast_peers.py --write-prior {args.write_prior}"
        atomic_write_json(args.write_prior, prior)
        print(f"wrote {args.write_prior} (from {len(curves)} curves)")
        return 0
    histories, dups = unique_histories(_history_paths(args))
    rows = public_rows(curves, args) + history_rows(histories, args)
    rows += synthetic_rows(args.synthetic, args)
    recalibrate_rows(rows)
    summary = summarise(rows, args.cuts)
    record = {"command": "python studies/forecast_peers.py" + (" " + " ".join(argv)
                                                                if argv else ""),
              "settings": {"cuts": args.cuts, "n_boot": args.n_boot, "seed": args.seed,
                           "synthetic": args.synthetic, "level": LEVEL, "quick": args.quick},
              "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
              "cpu_count": os.cpu_count(), "methods": list(METHODS),
              "duplicates_left_out": dups, "summary": summary,
              "targets": targets(summary), "rows": rows}
    print(f"{len(rows)} forecasts in {record['wall_s']:.0f} s wall, {record['cpu_s']:.0f} CPU s")
    atomic_write_json(args.json, record)
    publish_tables(markdown_table(record), doc_tables(record), args)
    return 0


def doc_tables(record: dict) -> dict[str, str]:
    """The record's tables by doc block: the head-to-head with the targets, the hindsight bands."""
    return {DOC_BLOCK: f"{markdown_table(record)}\n{targets_markdown(record)}",
            HINDSIGHT_BLOCK: hindsight_markdown(record)}


def publish_tables(table: str, tables: dict[str, str], args) -> None:
    """Write the head-to-head ``table`` beside the record (.md), print ``tables`` and, with
    ``--update-docs``, write each into its block of the doc."""
    atomic_write_text(args.json.with_suffix(".md"), table)
    publish(args.update_docs, tables)


if __name__ == "__main__":
    run_cli(main)
