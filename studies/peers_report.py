"""The head-to-head's summaries and tables (studies/forecast_peers.py): per source, method and
cut, coverage with its binomial band, width, interval score and point error; interval-score wins
per curve; the issue's targets for ours; the narrowest hindsight bands; markdown of all of it."""

from __future__ import annotations

from zhbert.analysis.loss_forecast import PEERS
from zhbert.analysis.scoring import binomial_band, hindsight_band, interval_summary

METHODS = ("ours", *PEERS)
LEVEL = 0.95


def _block(rows: list[dict]) -> dict:
    """:func:`interval_summary` of some rows, with refusals and the 95 % binomial band."""
    s = interval_summary([r for r in rows if r["ok"]], LEVEL)
    s["refused"] = sum(not r["ok"] for r in rows)
    s["band"] = list(binomial_band(s["n"])) if s["n"] else None
    return s


def wins(rows: list[dict]) -> dict:
    """Per curve, the method with the lowest mean interval score over the cuts every method
    forecast; ``{"curves", "ours", "best": {curve: method}}`` (curves with no such cut left out).
    A method that forecasts nothing in ``rows`` (a schedule-aware law without an lr column) does
    not compete."""
    methods = [m for m in METHODS if any(r["ok"] for r in rows if r["method"] == m)]
    best = {}
    for curve in dict.fromkeys(r["curve"] for r in rows):
        rs = [r for r in rows if r["curve"] == curve and r["method"] in methods]
        cuts = [q for q in dict.fromkeys(r["cut"] for r in rs)
                if all(r["ok"] for r in rs if r["cut"] == q)]
        if not cuts:
            continue
        score = {m: interval_summary([r for r in rs if r["method"] == m and r["cut"] in cuts],
                                     LEVEL)["mean_interval_score"] for m in methods}
        best[curve] = min(methods, key=lambda m: score[m])  # ties go to the first: ours
    return {"curves": len(best), "ours": sum(m == "ours" for m in best.values()), "best": best}


def summarise(rows: list[dict], cuts) -> dict:
    """Per source: per method, per cut and pooled blocks, and the interval-score wins."""
    out = {}
    for source in dict.fromkeys(r["source"] for r in rows):
        rs = [r for r in rows if r["source"] == source]
        out[source] = {
            "unit": "% of the final value" if "loss" in source else "accuracy points",
            "curves": len({r["curve"] for r in rs}), "wins": wins(rs),
            "methods": {m: {"pooled": _block([r for r in rs if r["method"] == m]),
                            "cuts": {str(q): _block([r for r in rs if r["method"] == m
                                                     and r["cut"] == q]) for q in cuts}}
                        for m in METHODS}}
    return out


def targets(summary: dict) -> dict:
    """The issue's targets for ours, per source: pooled coverage 90-98 %, each cut's count
    within its binomial band, mean width at the 50 % cut at most 3 % of the final value (loss)
    or 10 points (accuracy), best interval score on at least two thirds of the curves."""
    out = {}
    for source, s in summary.items():
        ours = s["methods"]["ours"]
        limit = 3.0 if "loss" in source else 10.0
        cov = ours["pooled"]["coverage"]
        half = ours["cuts"].get("0.5", {}).get("mean_width")
        cut_ok = all(b["n"] == 0 or b["band"][0] <= b["covered"] <= b["band"][1]
                     for b in ours["cuts"].values())
        out[source] = {"pooled_coverage_90_98": cov is not None and 0.90 <= cov <= 0.98,
                       "per_cut_within_band": cut_ok,
                       "width_at_50pct_within_limit": half is not None and half <= limit,
                       "width_limit": limit,
                       "best_interval_score_on_two_thirds": 3 * s["wins"]["ours"]
                       >= 2 * s["wins"]["curves"] > 0}
    return out


def _fmt(v, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def markdown_table(record: dict) -> str:
    """The record's tables, one per source."""
    lines = []
    for source, s in record["summary"].items():
        w = s["wins"]
        lines += [f"**{source}** ({s['curves']} curves; widths, scores and errors in "
                  f"{s['unit']}; ours has the best mean interval score on {w['ours']} of "
                  f"{w['curves']} curves)", "",
                  "| method | cut | forecasts (refused) | covered (95 % band) | coverage "
                  "| mean width | mean interval score | mean abs error |",
                  "|---|---|---|---|---|---|---|---|"]
        for m, blocks in s["methods"].items():
            for cut, b in [*blocks["cuts"].items(), ("pooled", blocks["pooled"])]:
                band = f"{b['band'][0]}-{b['band'][1]}" if b["band"] else "–"
                label = cut if cut == "pooled" else f"{float(cut):.0%}"
                lines.append(f"| {m} | {label} | {b['n']} ({b['refused']}) | {b['covered']} "
                             f"({band}) | {_fmt(b['coverage'], '.0%')} | {_fmt(b['mean_width'])} "
                             f"| {_fmt(b['mean_interval_score'])} | "
                             f"{_fmt(b['mean_abs_error'])} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def targets_markdown(record: dict) -> str:
    """Where ours stands against the issue's targets, one bullet per source."""
    lines = ["Where ours stands against the issue's targets (`targets` in the record; accuracy "
             "widths in points, loss widths in % of the final value):", ""]
    for source, t in record["targets"].items():
        ours = record["summary"][source]["methods"]["ours"]
        p, w = ours["pooled"], record["summary"][source]["wins"]
        cuts = ", ".join(f"{float(q):.0%}: {b['covered']} of {b['n']} (band {b['band'][0]}-"
                         f"{b['band'][1]})" for q, b in ours["cuts"].items() if b["n"])
        half = ours["cuts"].get("0.5", {}).get("mean_width")

        def met(ok):
            return "met" if ok else "not met"

        lines.append(
            f"* {source}: pooled coverage {p['covered']} of {p['n']} ({_fmt(p['coverage'], '.1%')}"
            f"; target 90-98 %: {met(t['pooled_coverage_90_98'])}); per cut {cuts} "
            f"({met(t['per_cut_within_band'])}); mean width at the 50 % cut {_fmt(half)} "
            f"(target at most {t['width_limit']:g}: {met(t['width_at_50pct_within_limit'])}); "
            f"best interval score on {w['ours']} of {w['curves']} curves (target two thirds: "
            f"{met(t['best_interval_score_on_two_thirds'])}).")
    return "\n".join(lines) + "\n"


def hindsight(record: dict, cut: str = "0.5") -> dict:
    """Per source and method, at ``cut``: the forecasts made, the fewest the per-cut target lets
    an interval cover (the lower end of the binomial band), and the narrowest constant band
    around the method's forecasts that covers that many, chosen knowing the actuals
    (:func:`zhbert.analysis.scoring.hindsight_band`; in the source's unit)."""
    out: dict = {}
    for source in record["summary"]:
        for m in METHODS:
            e = [r["actual"] - r["value"] for r in record["rows"]
                 if r["source"] == source and r["method"] == m and r["ok"]
                 and str(r["cut"]) == cut]
            if e:
                k = binomial_band(len(e))[0]
                out.setdefault(source, {})[m] = {"n": len(e), "k": k,
                                                 "band": hindsight_band(e, k)}
    return out


def hindsight_markdown(record: dict, cut: str = "0.5") -> str:
    """:func:`hindsight` as a table, beside the width target (a sentence when the record has no
    forecast at ``cut``)."""
    bands = hindsight(record, cut)
    if not bands:
        return f"No forecasts at the {float(cut):.0%} cut in this record: no hindsight bands.\n"
    lines = [f"| source | method | {float(cut):.0%}-cut forecasts | fewest the target lets "
             "cover | narrowest constant band covering them | width target |",
             "|---|---|---|---|---|---|"]
    for source, by in bands.items():
        limit = record["targets"][source]["width_limit"]
        for m, h in by.items():
            lines.append(f"| {source} | {m} | {h['n']} | {h['k']} | {h['band']:.2f} | "
                         f"{limit:g} |")
    return "\n".join(lines) + "\n"
