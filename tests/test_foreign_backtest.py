"""studies/foreign_backtest.py: curves written as other tools' CSVs, backtested as the CLI does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers_scripts import load_script
from tests.test_forecast_peers import PLAN, _curves
from zhbert.analysis.synthetic import LOSS_C_RANGE, make_scheduled_history, random_loss_shape
from zhbert.errors import UserError


def test_the_study_backtests_both_sources_with_both_noise_estimates(tmp_path):
    study = load_script("studies/foreign_backtest.py")
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps(make_scheduled_history(PLAN, n=200, seed=1, eval_every=10)))
    out = tmp_path / "rec" / "foreign.json"
    doc = tmp_path / "doc.md"
    marked = f"intro\n<!-- {study.DOC_BLOCK}:start -->\nold\n<!-- {study.DOC_BLOCK}:end -->\nend\n"
    doc.write_text(marked)
    run = ["--curves", str(_curves(tmp_path / "curves")), "--histories", str(hist),
           "--cuts", "0.3", "0.5", "--n-boot", "20", "--json", str(out)]
    # a doc without the block: a UserError, and no record written
    bare = tmp_path / "bare.md"
    bare.write_text("no block here\n")
    with pytest.raises(UserError, match="block"):
        study.main([*run, "--update-docs", str(bare)])
    assert not out.exists()
    assert study.main([*run, "--update-docs", str(doc)]) == 0
    rec = json.loads(out.read_text())
    block = doc.read_text().split(f"{study.DOC_BLOCK}:start -->")[1].split("<!--")[0]
    assert "old" not in block and doc.read_text().startswith("intro") and "end" in doc.read_text()
    # one row per source, estimate and cut with forecasts; the counts are the record's
    done = {(src, est, cut): b for src, by in rec["summary"].items() for est, bl in by.items()
            for cut, b in bl.items() if b["n"]}
    assert block.count("\n| ") - 1 == len(done)
    pooled = rec["summary"][study.SOURCES[0]][study.ESTIMATES[0]]["pooled"]
    assert f"| pooled | {pooled['covered']}/{pooled['n']} |" in block
    assert "(% of the final value)" in block and "(accuracy points)" in block
    # --from-record renders the same table from the record alone
    again = tmp_path / "again.md"
    again.write_text(marked)
    assert study.main(["--json", str(out), "--from-record", "--update-docs", str(again)]) == 0
    assert again.read_text() == doc.read_text()
    with pytest.raises(UserError, match="file not found"):
        study.main(["--json", str(tmp_path / "none.json"), "--from-record"])
    rows = rec["rows"]
    assert {r["source"] for r in rows} == set(study.SOURCES)
    # every curve and cut once per estimate; the accuracy series came back from its CSV
    acc = [r for r in rows if r["source"] == study.SOURCES[1]]
    assert len(acc) == 2 * 2 and {r["curve"] for r in acc} == {str(hist)}
    assert len([r for r in rows if r["source"] == study.SOURCES[0]]) == 2 * 2 * 2
    for source, by in rec["summary"].items():
        for estimate, block in by.items():
            done = [r for r in rows if r["source"] == source and r["estimate"] == estimate
                    and r["ok"]]
            assert block["pooled"]["n"] == len(done)
            assert block["pooled"]["covered"] == sum(r["covered"] for r in done)
    # the synthetic held-out series is smooth: its tail noise is below the first differences'
    tail = {r["stderr"] for r in acc if r["estimate"] == study.ESTIMATES[0]}
    first = {r["stderr"] for r in acc if r["estimate"] == study.ESTIMATES[1]}
    assert len(tail) == len(first) == 1 and tail.pop() < first.pop()
    assert rec["command"].startswith("python studies/foreign_backtest.py --curves")
    assert rec["command"].endswith(f"--update-docs {doc}")


def test_tissue_fits_records_the_generator_range_and_fits_each_curve(tmp_path):
    study = load_script("studies/tissue_fits.py")
    low, high = LOSS_C_RANGE
    draws = [random_loss_shape(np.random.default_rng(i))["C"] for i in range(50)]
    assert low <= min(draws) and max(draws) <= high and high - low > 0.01
    out = tmp_path / "t.json"
    assert study.main(["--curves", str(_curves(tmp_path / "curves")), "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert set(rec["fits"]) == {"cosine", "constant"}
    assert rec["by_schedule"]["constant"]["n"] == 1 and rec["generator_C"] == [low, high]
    assert all(np.isfinite(f["C"]) for f in rec["fits"].values())


def test_the_docs_show_the_committed_foreign_backtest():
    """docs/ANALYSIS.md's table of other tools' logs is the committed record's."""
    study = load_script("studies/foreign_backtest.py")
    rec = json.loads((study.ROOT / "results" / "forecast_peers" / "foreign.json").read_text())
    doc = (study.ROOT / "docs" / "ANALYSIS.md").read_text()
    assert study.markdown(rec["summary"], rec["units"]) in doc
    assert set(rec["summary"]) == set(study.SOURCES) and rec["units"] == study.UNITS
    assert study.summary(rec["rows"], rec["settings"]["cuts"]) == rec["summary"]
