"""Ours' intervals in the head-to-head (studies/forecast_peers.py) recalibrated as the package
does (:mod:`zhbert.analysis.recalibrate`), but on the OTHER curves' backtests only: the rows'
units converted back to the recalibration's, and one leave-one-curve-out calibration per curve."""

from __future__ import annotations

from studies.peers_report import LEVEL
from zhbert.analysis import recalibrate


def _natural(r: dict) -> dict:
    """A row of ours in the units :mod:`zhbert.analysis.recalibrate` reads (fractions, loss)."""
    kind = r["cls"].split("/")[0]
    return {"cls": r["cls"], "kind": kind, "value": r["value"] / r["scale"],
            "lower": r["raw_lower"] / r["scale"], "upper": r["raw_upper"] / r["scale"],
            "actual": r["actual"] / r["scale"]}


def calibration_records(rows: list[dict]) -> list[dict]:
    """Ours' forecasts that have a class, as :func:`zhbert.analysis.recalibrate.fit` reads them
    (each with its ``curve``)."""
    return [{**_natural(r), "curve": r["curve"]} for r in rows
            if r["method"] == "ours" and r["ok"] and r.get("cls")]


def recalibrate_rows(rows: list[dict], norm: str = "sqrt_width", narrow_small_pools=False,
                     by_kind: bool = False) -> None:
    """Ours' intervals recalibrated on the OTHER curves' backtests (leave one curve out), in
    place; ``raw_lower``/``raw_upper`` keep the forecaster's own. ``norm``,
    ``narrow_small_pools`` as in ``zhbert.analysis.recalibrate.fit``; ``by_kind``: one class per
    kind instead of per kind and phase (the variants of studies/recalibration_variants.py)."""
    records = calibration_records(rows)
    if by_kind:
        records = [{**x, "cls": x["kind"]} for x in records]
    cals: dict[str, dict] = {}  # one leave-one-out calibration per curve
    for r in rows:
        if r["method"] != "ours" or not r["ok"] or not r.get("cls"):
            continue
        r.update(lower=r["raw_lower"], upper=r["raw_upper"], recalibrated=False)
        if r["curve"] not in cals:
            cals[r["curve"]] = recalibrate.fit([x for x in records if x["curve"] != r["curve"]],
                                               LEVEL, norm, narrow_small_pools)
        cal = cals[r["curve"]]
        n = _natural(r)
        cls = n["kind"] if by_kind else r["cls"]
        out = recalibrate.apply(n["kind"], n["value"], n["lower"], n["upper"], cls, cal)
        if out is not None:
            r.update(lower=out["lower"] * r["scale"], upper=out["upper"] * r["scale"],
                     recalibrated=True)
