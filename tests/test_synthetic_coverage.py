"""studies/synthetic_coverage.py: ours on many synthetic curves, by variant, family and schedule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers_scripts import load_script
from tests.test_forecast_peers import PLAN
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.synthetic import LOSS_C_RANGE, make_loss_curve, make_scheduled_history
from zhbert.errors import UserError

TISSUE = {"by_schedule": {"cosine": {"n": 6, "min": 0.003, "max": 0.01},
                          "wsd": {"n": 3, "min": 0.042, "max": 0.053}}}


def test_c_range_moves_only_c_to_the_same_quantile():
    with pytest.raises(ValueError, match="not both"):
        make_loss_curve(Schedule(1e-3, 100, 4000, "cosine"), shape={"C": 0.1}, c_range=(0, 1))
    sched = Schedule(1e-3, 100, 4000, "cosine")
    base = make_loss_curve(sched, n=50, seed=3)
    moved = make_loss_curve(sched, n=50, seed=3, c_range=(0.1, 0.2))
    a, b = base["truth"]["shape"], moved["truth"]["shape"]
    q = (a["C"] - LOSS_C_RANGE[0]) / (LOSS_C_RANGE[1] - LOSS_C_RANGE[0])
    assert b["C"] == pytest.approx(0.1 + 0.1 * q) and b["C"] > 0.1 > a["C"]
    assert {k: v for k, v in a.items() if k != "C"} == {k: v for k, v in b.items() if k != "C"}
    # the same noise: the two curves differ by (C' - C) S2 / 1000 exactly
    s2 = sched.areas(np.asarray(base["steps"]))[1] / 1000.0
    diff = np.asarray(base["loss"]) - np.asarray(moved["loss"])
    np.testing.assert_allclose(diff, (b["C"] - a["C"]) * s2, atol=1e-12)
    # a constant lr anneals nothing: C changes nothing after the warmup
    flat = Schedule(1e-3, 100, 4000, "constant")
    np.testing.assert_allclose(make_loss_curve(flat, n=50, seed=3)["loss"][5:],
                               make_loss_curve(flat, n=50, seed=3, c_range=(0.5, 0.6))["loss"][5:])


def test_the_study_scores_every_source_variant_and_schedule(tmp_path):
    study = load_script("studies/synthetic_coverage.py")
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps(make_scheduled_history(PLAN, n=200, seed=1, eval_every=10)))
    fits = tmp_path / "tissue.json"
    fits.write_text(json.dumps(TISSUE))
    out, doc = tmp_path / "rec" / "sc.json", tmp_path / "doc.md"
    doc.write_text(f"<!-- {study.DOC_BLOCK}:start -->\n<!-- {study.DOC_BLOCK}:end -->\n")
    run = ["--n", "4", "--cuts", "0.5", "--n-boot", "20", "--histories", str(hist),
           "--tissue-fits", str(fits), "--json", str(out)]
    assert study.main([*run, "--update-docs", str(doc)]) == 0
    rec = json.loads(out.read_text())
    rows, s = rec["rows"], rec["summary"]
    # 4 synthetic accuracy curves and 1 history per variant, 4 curves per loss set, one cut
    for variant in study.VARIANTS:
        assert len([r for r in rows if r["source"] == study.SYN and r["variant"] == variant]) == 4
        assert len([r for r in rows if r["source"] == study.PROJ and r["variant"] == variant]) == 1
    assert len([r for r in rows if r["source"] == study.LOSS]) == 4
    # the first curves are the head-to-head's: its committed record holds the same actuals
    peers = json.loads((study.ROOT / "results" / "forecast_peers" / "peers.json").read_text())
    for source in (study.SYN, study.LOSS):
        theirs = {r["curve"]: r["actual"] for r in peers["rows"]
                  if r["source"] == source and r["method"] == "ours"}
        ours = {r["curve"]: r["actual"] for r in rows if r["source"] == source}
        assert len(ours) == 4 and all(ours[c] == pytest.approx(theirs[c]) for c in ours)
    # the lr-area variant has no step-axis family
    for r in rows:
        if r["variant"] != "package" and r["ok"]:
            assert not any(k.endswith("_steps") for k in r["families"])
    # every cell counts its rows: covered plus the misses on each side is the forecasts
    for source, by in s["coverage"].items():
        for variant, block in by.items():
            done = [r for r in rows if r["source"] == source and r["variant"] == variant
                    and r["ok"]]
            b = block["pooled"]
            assert b["n"] == len(done)
            assert b["covered"] + b["misses_high"] + b["misses_low"] == b["n"]
            assert b["mean_error"] == pytest.approx(np.mean([r["value"] - r["actual"]
                                                             for r in done]))
    # the matched set takes the public cosine range for cosine and linear, wsd's for WSD
    assert rec["matched_c_ranges"] == {"cosine": [0.003, 0.01], "linear": [0.003, 0.01],
                                       "tabulated": [0.042, 0.053]}
    assert set(s["loss_by_schedule"][study.LOSS]) == {"cosine", "linear", "constant",
                                                      "tabulated"}
    # a constant lr anneals nothing: its curve is the same in both loss sets
    const = [(r["curve"], r["actual"]) for r in rows if r.get("schedule") == "constant"]
    assert len(const) == 2 and const[0][0] == const[1][0]
    assert const[0][1] == pytest.approx(const[1][1], rel=1e-12)
    # the doc block and --from-record render the same tables
    again = tmp_path / "again.md"
    again.write_text(doc.read_text().replace("| synthetic", "| old", 1))
    assert study.main(["--json", str(out), "--from-record", "--update-docs", str(again)]) == 0
    assert again.read_text() == doc.read_text()
    assert "| synthetic loss | WSD |" in doc.read_text()  # the tabulated schedule, by its name


def test_a_bad_tissue_record_is_one_error_and_writes_nothing(tmp_path):
    study = load_script("studies/synthetic_coverage.py")
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"by_schedule": {"cosine": {"min": 0, "max": 1}}}))
    out = tmp_path / "sc.json"
    with pytest.raises(UserError, match="tissue_fits.py record"):
        study.main(["--n", "1", "--tissue-fits", str(bad), "--json", str(out)])
    assert not out.exists()
    with pytest.raises(UserError, match="file not found"):
        study.main(["--from-record", "--json", str(out)])
    # a record cut short, or another study's: one error each, and the doc is not touched
    doc = tmp_path / "doc.md"
    doc.write_text(f"<!-- {study.DOC_BLOCK}:start -->\nkept\n<!-- {study.DOC_BLOCK}:end -->\n")
    for text, message in (("{", "invalid JSON"), ('{"rows": []}', "not a synthetic-coverage")):
        out.write_text(text)
        with pytest.raises(UserError, match=message):
            study.main(["--from-record", "--json", str(out), "--update-docs", str(doc)])
    assert "kept" in doc.read_text()


def test_the_docs_show_the_committed_synthetic_coverage():
    study = load_script("studies/synthetic_coverage.py")
    rec = json.loads((study.ROOT / "results" / "forecast_peers" / "synthetic_coverage.json")
                     .read_text())
    assert study.markdown(rec["summary"]) in (study.ROOT / "docs" / "ANALYSIS.md").read_text()
    assert rec["settings"]["n"] == 96
    assert study.summarise(rec["rows"], rec["settings"]["cuts"]) == rec["summary"]
