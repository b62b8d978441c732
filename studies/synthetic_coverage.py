#!/usr/bin/env python
"""Ours on many synthetic curves, and on this project's accuracy histories beside them: coverage
at a sample size that tells 95 % from 88 %, which side the misses fall on, and which families
cause them.

    python studies/synthetic_coverage.py --update-docs docs/ANALYSIS.md
    python studies/synthetic_coverage.py --from-record --update-docs docs/ANALYSIS.md  # tables only

The head-to-head (``studies/forecast_peers.py``) scores 8 synthetic curves of each kind: 24
forecasts, whose binomial band (20-24) a single curve's two misses can leave. This study makes
``--n`` of each with the same recipe and seeds (``studies/synthetic_sets.py``; the first 8 are
the head-to-head's) and forecasts them with ours only, at the same cuts, against the last
measured point:

* accuracy, two variants of ours: the package's (every family of
  ``zhbert.analysis.forecast_families``) and ``without the step-axis families`` (the
  ``*_steps`` families left out). This project's accuracy histories (the head-to-head's, each once) are
  forecast with both and recalibrated as in the head-to-head (leave one curve out); the
  synthetic curves, like any series without this project's baselines, keep the raw interval;
* per family, on both sources: its mean signed error (forecast - actual) and its mean weight in
  the package's mixture, which show why no one mixture suits both;
* loss: ours (the package's prior) on the synthetic loss curves, per schedule; and on the same
  curves with Tissue's annealing constant ``C`` moved to the range the public curves' whole-curve
  fits give for their schedule (``--tissue-fits``, written by ``studies/tissue_fits.py``):
  cosine's for the cosine and the linear curves (no public curve is linear), ``wsd``'s for the
  WSD ones; the constant-lr curves have no annealing area and are the same in both.

Accuracy in points; loss in % of the final value. Numbers go to ``--json``; nothing is tuned here.
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

from studies.forecast_peers import (  # noqa: E402
    _history_paths,
    accuracy_rows,
    default_prior,
    history_rows,
    loss_rows,
    unique_histories,
)
from studies.peers_recalibration import recalibrate_rows  # noqa: E402
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
from zhbert.analysis.forecast_families import forecast_families  # noqa: E402
from zhbert.analysis.scoring import binomial_band  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402

DOC_BLOCK = "synthetic-coverage"
SYN, PROJ, LOSS = "synthetic accuracy", "project accuracy", "synthetic loss"
LOSS_MATCHED = "synthetic loss, C as the public curves'"
#: the public schedule whose fitted C range each synthetic schedule takes in LOSS_MATCHED
MATCH = {"cosine": "cosine", "linear": "cosine", "tabulated": "wsd"}
#: ours' candidate families per variant (None: the package's, every one)
VARIANTS = {"package": None,
            "without the step-axis families": [k for k in forecast_families()
                                               if not k.endswith("_steps")]}
#: how the tables name a schedule kind (the synthetic WSD schedule is a tabulated one)
SCHEDULE_LABELS = {"tabulated": "WSD"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=96,
                   help="synthetic accuracy histories and loss curves, N of each (default 96)")
    p.add_argument("--histories", nargs="*", type=Path, default=None, metavar="H.json",
                   help="this project's history files (default: the head-to-head's)")
    p.add_argument("--cuts", nargs="+", type=float, default=[0.2, 0.3, 0.5],
                   help="cut fractions of the last step (default 0.2 0.3 0.5)")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap resamples (default 100)")
    p.add_argument("--seed", type=int, default=0,
                   help="first synthetic seed, and every bootstrap's (default 0, as the "
                        "head-to-head)")
    p.add_argument("--tissue-fits", type=Path,
                   default=ROOT / "results" / "forecast_peers" / "tissue_fits.json",
                   help="studies/tissue_fits.py's record: the public curves' C per schedule "
                        "(default results/forecast_peers/tissue_fits.json)")
    p.add_argument("--json", type=Path,
                   default=ROOT / "results" / "forecast_peers" / "synthetic_coverage.json",
                   help="the record (default results/forecast_peers/synthetic_coverage.json)")
    p.add_argument("--update-docs", type=Path, default=None, metavar="DOC.md",
                   help=f"also write the tables into DOC.md's {DOC_BLOCK} block")
    p.add_argument("--from-record", action="store_true",
                   help="run nothing: render the tables of the existing --json record")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be at least 1")
    check_run_options(p, args)
    return args


def matched_c_ranges(path: Path) -> dict[str, tuple[float, float]]:
    """Synthetic schedule kind -> the C range of the public schedule :data:`MATCH` names."""
    def ranges(rec: dict) -> dict[str, tuple[float, float]]:
        by = rec["by_schedule"]
        return {k: (float(by[v]["min"]), float(by[v]["max"])) for k, v in MATCH.items()}
    return render_record(path, "a tissue_fits.py record with C per schedule ("
                         + ", ".join(sorted(set(MATCH.values()))) + ")", ("by_schedule",),
                         "studies/tissue_fits.py", ranges)


def forecast_rows(args, c_ranges: dict) -> list[dict]:
    """Ours' rows: both accuracy variants on the synthetic and project accuracy, the package on
    both synthetic loss sets (``c_ranges``: :func:`matched_c_ranges`); each row tagged with its
    ``variant``."""
    rows = []
    histories, _ = unique_histories(_history_paths(args))
    for variant, families in VARIANTS.items():
        opts = {"methods": ("ours",), "families": families, "family_values": True}
        new = []
        for i in range(args.n):
            name, steps, acc, plan, stderr = synthetic_accuracy(i, args.seed + i)
            new += accuracy_rows(SYN, name, steps, acc, plan, float(acc[-1]), stderr, None,
                                 args, **opts)
        project = history_rows(histories, args, with_loss=False, **opts)
        recalibrate_rows(project)
        rows += [{**r, "variant": variant} for r in new + project]
    prior = default_prior()
    for source, ranges in ((LOSS, None), (LOSS_MATCHED, c_ranges)):
        for i in range(args.n):
            name, steps, loss, sched = synthetic_loss(i, args.seed + i, ranges)
            rows += [{**r, "variant": "package", "schedule": sched.kind}
                     for r in loss_rows(source, name, steps, loss, sched, float(loss[-1]),
                                        SYNTHETIC_LOSS_NOISE, prior, args, methods=("ours",))]
    return rows


def _cell(rows: list[dict]) -> dict:
    """Forecasts, covered (with the 95 % binomial band), mean width, mean signed error
    (forecast - actual) and mean absolute error, and the misses by side."""
    done = [r for r in rows if r["ok"]]
    if not done:
        return {"n": 0}
    err = np.array([r["value"] - r["actual"] for r in done])
    return {"n": len(done), "covered": sum(r["lower"] <= r["actual"] <= r["upper"] for r in done),
            "band": list(binomial_band(len(done))),
            "mean_width": float(np.mean([r["upper"] - r["lower"] for r in done])),
            "mean_error": float(err.mean()), "mean_abs_error": float(np.abs(err).mean()),
            "misses_high": sum(r["lower"] > r["actual"] for r in done),
            "misses_low": sum(r["upper"] < r["actual"] for r in done)}


def summarise(rows: list[dict], cuts) -> dict:
    """``coverage[source][variant][cut]``, ``families[source][family][cut]`` (the package's
    mixture) and ``loss_by_schedule[source][schedule][cut]``; each cut also ``pooled``."""
    def at(rs, cut):
        return [r for r in rs if cut == "pooled" or r["cut"] == cut]
    keys = [*cuts, "pooled"]
    coverage: dict = {}
    for source in (SYN, PROJ, LOSS, LOSS_MATCHED):
        for variant in VARIANTS:
            rs = [r for r in rows if r["source"] == source and r["variant"] == variant]
            if rs:
                coverage.setdefault(source, {})[variant] = {str(c): _cell(at(rs, c)) for c in keys}
    families: dict = {}
    for source in (SYN, PROJ):
        rs = [r for r in rows if r["source"] == source and r["variant"] == "package" and r["ok"]]
        for fam in forecast_families():
            for c in keys:
                vals = [(r["families"][fam][0] - r["actual"], r["families"][fam][1])
                        for r in at(rs, c) if fam in r["families"]
                        and r["families"][fam][0] is not None]
                if vals:
                    e, w = np.array(vals).T
                    families.setdefault(source, {}).setdefault(fam, {})[str(c)] = {
                        "n": len(vals), "mean_error": float(e.mean()),
                        "mean_abs_error": float(np.abs(e).mean()),
                        "mean_weight": float(w.sum() / len(at(rs, c)))}
    by_schedule = {}
    for source in (LOSS, LOSS_MATCHED):
        loss = [r for r in rows if r["source"] == source]
        by_schedule[source] = {
            k: {str(c): _cell(at([r for r in loss if r["schedule"] == k], c)) for c in keys}
            for k in sorted({r["schedule"] for r in loss})}
    return {"coverage": coverage, "families": families, "loss_by_schedule": by_schedule}


def _cut(c: str) -> str:
    return c if c == "pooled" else f"{float(c):.0%}"


#: the columns of a coverage row after its two labels and its cut
_COVERAGE_COLUMNS = ("covered (95 % band) | mean width | mean error | mean abs error | misses: "
                     "interval above / below the actual |")


def _coverage_rows(blocks: dict) -> list[str]:
    """One markdown row per cut of ``blocks`` (``{label: {second label: {cut: cell}}}``) that
    has forecasts: the two labels, the cut, then the :func:`_cell` numbers."""
    return [f"| {a} | {b_label} | {_cut(c)} | {b['covered']}/{b['n']} "
            f"({b['band'][0]}-{b['band'][1]}) | {b['mean_width']:.2f} | "
            f"{b['mean_error']:+.2f} | {b['mean_abs_error']:.2f} | "
            f"{b['misses_high']} / {b['misses_low']} |"
            for a, by in blocks.items() for b_label, block in by.items()
            for c, b in block.items() if b["n"]]


def markdown(s: dict) -> str:
    """The three tables of :func:`summarise`."""
    lines = [f"| source | ours | cut | {_COVERAGE_COLUMNS}", "|---|---|---|---|---|---|---|---|",
             *_coverage_rows(s["coverage"])]
    cuts = [c for c in next(iter(s["coverage"][SYN].values())) if c != "pooled"]
    lines += ["", "| source | family | " + " | ".join(
        f"{_cut(c)}: mean error (mean weight)" for c in cuts) + " |",
        "|---|---|" + "---|" * len(cuts)]
    for source, by in s["families"].items():
        for fam, block in by.items():
            cells = [f"{block[c]['mean_error']:+.2f} ({block[c]['mean_weight']:.2f})"
                     if c in block else "–" for c in cuts]
            lines.append(f"| {source} | {fam} | " + " | ".join(cells) + " |")
    schedules = {source: {SCHEDULE_LABELS.get(k, k): block for k, block in by.items()}
                 for source, by in s["loss_by_schedule"].items()}
    lines += ["", f"| source | schedule | cut | {_COVERAGE_COLUMNS}",
              "|---|---|---|---|---|---|---|---|", *_coverage_rows(schedules)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Forecast every curve, summarise, print the tables, write the record."""
    argv = list(sys.argv[1:] if argv is None else argv)  # the record names the real command
    args = parse_args(argv)
    require_blocks(args.update_docs, DOC_BLOCK)  # before any work
    if args.from_record:
        md = render_record(args.json, "a synthetic-coverage record", ("summary",),
                           "studies/synthetic_coverage.py", lambda r: markdown(r["summary"]))
        publish(args.update_docs, {DOC_BLOCK: md})
        return 0
    t0, c0 = time.perf_counter(), time.process_time()
    c_ranges = matched_c_ranges(args.tissue_fits)
    rows = forecast_rows(args, c_ranges)
    s = summarise(rows, args.cuts)
    atomic_write_json(args.json, {
        "command": "python studies/synthetic_coverage.py" + (" " + " ".join(argv) if argv
                                                              else ""),
        "settings": {"n": args.n, "cuts": args.cuts, "n_boot": args.n_boot, "seed": args.seed,
                     "variants": VARIANTS},
        "units": {SYN: "accuracy points", PROJ: "accuracy points",
                  LOSS: "% of the final value", LOSS_MATCHED: "% of the final value"},
        "matched_c_ranges": c_ranges,
        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
        "summary": s, "rows": rows})
    publish(args.update_docs, {DOC_BLOCK: markdown(s)})
    return 0


if __name__ == "__main__":
    run_cli(main)
