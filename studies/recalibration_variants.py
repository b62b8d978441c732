#!/usr/bin/env python
"""Variants of the interval recalibration, scored on the head-to-head record without refitting.

    python studies/recalibration_variants.py            # reads results/forecast_peers/peers.json
    python studies/recalibration_variants.py --update-docs docs/ANALYSIS.md

The record keeps each of ours' forecasts with its raw interval and its recalibration class
(``raw_lower``, ``raw_upper``, ``cls``), so every variant below is the same leave-one-curve-out
recalibration (``forecast_peers.recalibrate_rows``) with one choice changed, on the same
forecasts:

* ``raw``: no recalibration;
* ``package``: classes by kind and phase, excess over sqrt(width), no narrowing from a pool too
  small for the conformal rank (what ``zhbert.analysis.recalibrate`` ships);
* ``by width`` / ``additive``: the excess divided by the width, or not divided;
* ``narrow small pools``: small pools may narrow an edge too;
* ``one class per kind``: accuracy and loss pooled over both phases;
* ``by phase and reach``: each class split by how far the forecast reaches, a cut below 40 %
  of the run (``far``) or at or above it (``near``), so a 50 % cut's edges are not set by the
  misses of the 20 % cuts.

For each source with classes (the project's histories) it reports coverage, mean width at the
50 % cut and pooled, and mean interval score; written to ``recalibration_variants.{json,md}``
beside the record, and with ``--update-docs`` into the doc's ``recalibration-variants`` block.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studies.forecast_peers import DEFAULT_JSON, LEVEL  # noqa: E402
from studies.peers_recalibration import recalibrate_rows  # noqa: E402
from zhbert.analysis.scoring import interval_summary  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import (  # noqa: E402
    atomic_write_json,
    atomic_write_text,
    read_json,
    replace_marked_block,
)

VARIANTS = {
    "raw": None,
    "package": {},
    "by width": {"norm": "width"},
    "additive": {"norm": "additive"},
    "narrow small pools": {"narrow_small_pools": True},
    "one class per kind": {"by_kind": True},
    "by phase and reach": {"reach_split": 0.4},
}
DOC_BLOCK = "recalibration-variants"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--record", type=Path, default=DEFAULT_JSON,
                   help="the head-to-head record (default results/forecast_peers/peers.json)")
    p.add_argument("--update-docs", type=Path, default=None, metavar="DOC.md",
                   help=f"also write the table into DOC.md's {DOC_BLOCK} block")
    return p.parse_args(argv)


ROW_KEYS = ("source", "curve", "method", "cut", "ok", "value", "actual", "raw_lower",
            "raw_upper", "cls", "scale")


def _ours(rows: list[dict]) -> list[dict]:
    """Ours' rows that carry their raw intervals (a record of an older version has none)."""
    return [r for r in rows if r.get("method") == "ours" and "raw_lower" in r]


def _check(path: Path, rows) -> list[dict]:
    """The record's rows of ours, or a UserError naming what is wrong."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{path}: 'rows' must be a list of forecast objects (a record of "
                        "studies/forecast_peers.py)")
    ours = _ours(rows)
    if not ours:
        raise UserError(f"{path}: no forecasts of ours with raw intervals (rerun "
                        "studies/forecast_peers.py)")
    missing = sorted({k for r in ours for k in ROW_KEYS if k not in r})
    if missing:
        raise UserError(f"{path}: forecasts of ours lack {', '.join(missing)}")
    return rows


def variant_rows(rows: list[dict], options: dict | None) -> list[dict]:
    """Ours' rows under one variant (a deep copy; ``None``: the raw intervals)."""
    out = copy.deepcopy(_ours(rows))
    if options is None:
        for r in out:
            r.update(lower=r["raw_lower"], upper=r["raw_upper"])
    else:
        options = dict(options)
        split = options.pop("reach_split", None)
        if split is not None:
            for r in out:
                if r.get("cls"):
                    r["cls"] += "/far" if r["cut"] < split else "/near"
        recalibrate_rows(out, **options)
    return out


def score(rows: list[dict]) -> dict:
    """Per source with classes: pooled and 50 %-cut coverage, width and interval score."""
    out = {}
    for source in sorted({r["source"] for r in rows if r.get("cls")}):
        done = [r for r in rows if r["source"] == source and r["ok"]]
        half = [r for r in done if r["cut"] == 0.5]
        out[source] = {"pooled": interval_summary(done, LEVEL),
                       "cut_0.5": interval_summary(half, LEVEL)}
    return out


def markdown(table: dict) -> str:
    """One row per variant and source."""
    lines = ["| variant | source | coverage | 50 % cut: coverage | 50 % cut: mean width "
             "| mean width | mean interval score |", "|---|---|---|---|---|---|---|"]
    for name, sources in table.items():
        for source, s in sources.items():
            p, h = s["pooled"], s["cut_0.5"]
            lines.append(f"| {name} | {source} | {p['covered']}/{p['n']} ({p['coverage']:.0%}) "
                         f"| {h['covered']}/{h['n']} | {h['mean_width']:.2f} "
                         f"| {p['mean_width']:.2f} | {p['mean_interval_score']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Score every variant on the record; print and write the table."""
    args = parse_args(argv)
    record = read_json(args.record, "the head-to-head record")
    rows = _check(args.record, record.get("rows") if isinstance(record, dict) else None)
    table = {name: score(variant_rows(rows, opts)) for name, opts in VARIANTS.items()}
    md = markdown(table)
    print(md)
    if args.update_docs is not None:  # first: a doc without the block writes nothing
        replace_marked_block(args.update_docs, DOC_BLOCK, md)
    out = args.record.with_name("recalibration_variants.json")
    atomic_write_json(out, {"command": "python studies/recalibration_variants.py",
                            "record": str(args.record), "variants": VARIANTS, "table": table})
    atomic_write_text(out.with_suffix(".md"), md)
    return 0


if __name__ == "__main__":
    run_cli(main)
