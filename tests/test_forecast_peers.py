"""studies/forecast_peers.py: every method on the same cuts, a JSON record and its tables."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.helpers_scripts import load_script
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.synthetic import make_loss_curve, make_scheduled_history
from zhbert.errors import UserError

PLAN = Schedule(1e-3, 100, 4000, "cosine")


def _curves(folder, kinds=("cosine", "constant")):
    folder.mkdir()
    for i, kind in enumerate(kinds):
        c = make_loss_curve(Schedule(3e-4, 100, 4000, kind), n=60, noise=0.002, seed=i)
        rows = ["step,lr,loss"] + [f"{s:g},{lr:.6g},{v:.6f}" for s, lr, v in
                                   zip(c["steps"], c["lr"], c["loss"], strict=True)]
        (folder / f"{kind}.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_quick_run_writes_the_record_and_its_table(tmp_path):
    peers = load_script("studies/forecast_peers.py")
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps(make_scheduled_history(PLAN, n=200, seed=1, eval_every=10)))
    out = tmp_path / "rec" / "peers.json"
    t0 = time.perf_counter()
    assert peers.main(["--quick", "--curves", str(_curves(tmp_path / "curves")), "--histories",
                       str(hist), "--synthetic", "1", "--cuts", "0.3", "0.5", "--json",
                       str(out)]) == 0
    assert time.perf_counter() - t0 < 60
    rec = json.loads(out.read_text())
    assert rec["methods"] == ["ours", "tissue_s1s2", "multi_power", "power_law_steps",
                              "last_value"]
    assert set(rec["summary"]) == {"public loss curves", "public loss curves, lr withheld",
                                   "project accuracy", "project loss", "synthetic accuracy",
                                   "synthetic loss"}
    blind = [r for r in rec["rows"] if r["source"] == peers.NO_LR]
    assert {r["method"] for r in blind if r["ok"]} == {"ours", "power_law_steps", "last_value"}
    assert all(r["cls"] == "loss/no-schedule" for r in blind if r["method"] == "ours")
    w = rec["summary"][peers.NO_LR]["wins"]  # the laws that need the lr do not compete
    assert w["curves"] == 2 and set(w["best"].values()) <= {"ours", "power_law_steps",
                                                            "last_value"}
    rows = [r for r in rec["rows"] if r["source"] == "public loss curves"]
    assert len(rows) == 2 * 2 * 5 and {r["curve"] for r in rows} == {"cosine", "constant"}
    for r in rows:
        assert r["actual"] == pytest.approx(100.0)  # loss rows in % of the final value
        if r["ok"]:
            assert r["lower"] <= r["value"] <= r["upper"]
    pub = rec["summary"]["public loss curves"]["methods"]["ours"]
    done = [r for r in rows if r["method"] == "ours" and r["ok"]]
    assert pub["pooled"]["n"] == len(done)
    assert pub["pooled"]["covered"] == sum(r["lower"] <= 100 <= r["upper"] for r in done)
    assert pub["pooled"]["mean_width"] == pytest.approx(
        np.mean([r["upper"] - r["lower"] for r in done]))
    assert set(pub["cuts"]) == {"0.3", "0.5"} and pub["cuts"]["0.5"]["band"] is not None
    assert {"pooled_coverage_90_98", "per_cut_within_band", "width_at_50pct_within_limit",
            "best_interval_score_on_two_thirds"} <= set(rec["targets"]["public loss curves"])
    assert rec["targets"]["public loss curves"]["width_limit"] == 3.0
    assert rec["targets"]["project accuracy"]["width_limit"] == 10.0
    assert rec["settings"]["n_boot"] == 20 and rec["wall_s"] > 0
    assert out.with_suffix(".md").read_text() == peers.markdown_table(rec)
    doc = tmp_path / "doc.md"
    # a doc with only one of the two blocks: an error, and the doc is left as it was
    doc.write_text("intro\n<!-- peers:start -->\n<!-- peers:end -->\n")
    with pytest.raises(UserError, match="peers-hindsight"):
        peers.main(["--from-record", "--json", str(out), "--update-docs", str(doc)])
    assert doc.read_text() == "intro\n<!-- peers:start -->\n<!-- peers:end -->\n"
    doc.write_text("intro\n<!-- peers:start -->\n<!-- peers:end -->\n"
                   "<!-- peers-hindsight:start -->\n<!-- peers-hindsight:end -->\n")
    out.with_suffix(".md").unlink()
    assert peers.main(["--from-record", "--json", str(out), "--update-docs", str(doc)]) == 0
    text = doc.read_text()
    assert peers.markdown_table(rec) in text and "* public loss curves: pooled coverage" in text
    assert peers.hindsight_markdown(rec) in text
    assert out.with_suffix(".md").read_text() == peers.markdown_table(rec)
    assert json.loads(out.read_text()) == rec  # rendering does not rewrite the record
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(UserError, match="not a head-to-head record"):
        peers.main(["--from-record", "--json", str(bad)])
    assert not bad.with_suffix(".md").exists()


def test_wins_count_the_lowest_mean_interval_score(tmp_path):
    peers = load_script("studies/forecast_peers.py")
    rows = []
    for m in peers.METHODS:
        half = 1.0 if m == "ours" else 3.0
        rows.append({"curve": "a", "method": m, "cut": 0.5, "ok": True, "value": 100.0,
                     "lower": 100 - half, "upper": 100 + half, "actual": 100.0})
        rows.append({"curve": "b", "method": m, "cut": 0.5, "ok": m != "last_value",
                     "value": 100.0, "lower": 99.0, "upper": 101.0, "actual": 100.0})
    w = peers.wins(rows)
    assert w == {"curves": 1, "ours": 1, "best": {"a": "ours"}}  # b: one method refused


def test_a_folder_without_loss_columns_is_a_one_line_error(tmp_path):
    peers = load_script("studies/forecast_peers.py")
    (tmp_path / "x.csv").write_text("step,value\n1,2\n")
    with pytest.raises(UserError, match="expected columns step,lr,loss"):
        peers.read_curves(tmp_path)
    with pytest.raises(UserError, match="no such folder"):
        peers.read_curves(tmp_path / "missing")


BASELINES = {"acc": {"unigram": 0.02, "left_bigram": 0.05, "right_bigram": 0.04,
                     "gap_trigram": 0.1}}


def _histories(folder, n=4):
    folder.mkdir()
    paths = []
    for i in range(n):
        h = make_scheduled_history(PLAN, n=200, seed=i, eval_every=10)
        h["meta"]["baselines"] = BASELINES
        paths.append(folder / f"h{i}.json")
        paths[-1].write_text(json.dumps(h))
    return paths


def test_a_copied_history_counts_once(tmp_path):
    peers = load_script("studies/forecast_peers.py")
    paths = _histories(tmp_path / "h", n=2)
    copy = tmp_path / "copy.json"
    copy.write_text(paths[0].read_text())
    kept, dups = peers.unique_histories([paths[0], copy, paths[1]])
    assert [p for p, _ in kept] == [paths[0], paths[1]]
    assert dups == {str(paths[0]): [str(copy)]}


def test_write_calibration_fits_classes_on_the_histories(tmp_path):
    peers = load_script("studies/forecast_peers.py")
    paths = _histories(tmp_path / "h")
    out = tmp_path / "cal.json"
    curves = _curves(tmp_path / "curves", ("cosine", "constant", "linear"))
    assert peers.main(["--write-calibration", str(out), "--n-boot", "20", "--histories",
                       *map(str, paths), "--curves", str(curves)]) == 0
    cal = json.loads(out.read_text())
    assert cal["curves"][:4] == [str(p) for p in paths] and cal["cuts"] == [0.2, 0.3, 0.5]
    assert sorted(cal["curves"][4:]) == ["constant", "cosine", "linear"]
    # 4 histories x 3 cuts, accuracy and loss, all above the bigram tables
    assert cal["classes"]["accuracy/context"]["n"] == 12
    assert cal["classes"]["loss/context"]["n"] == 12
    # the public curves without their lr: 3 x 3 cuts, too few for a class; never in "loss"
    assert "loss/no-schedule" not in cal["classes"] and cal["classes"]["loss"]["n"] == 12


def test_recalibration_in_the_study_leaves_the_scored_curve_out():
    peers = load_script("studies/forecast_peers.py")

    def row(curve, actual):
        return {"source": "project accuracy", "curve": curve, "method": "ours", "cut": 0.5,
                "ok": True, "value": 30.0, "lower": 29.0, "upper": 31.0, "raw_lower": 29.0,
                "raw_upper": 31.0, "actual": actual, "cls": "accuracy/plateau", "scale": 100.0,
                "recalibrated": False}

    rows = [row(f"c{i}", 30.0 + 0.1 * i) for i in range(12)] + [row("far", 60.0)]
    peers.recalibrate_rows(rows)
    far, near = rows[-1], rows[0]
    assert far["recalibrated"] and far["upper"] < 60.0  # its own miss is not in its pool
    assert near["upper"] == pytest.approx(60.0)  # the others' pools hold the far curve's miss
    assert far["raw_upper"] == 31.0


def test_variants_score_the_record_and_write_the_doc_block(tmp_path):
    variants = load_script("studies/recalibration_variants.py")

    def row(curve, cut, actual):
        return {"source": "project accuracy", "curve": curve, "method": "ours", "cut": cut,
                "ok": True, "value": 30.0, "lower": 29.0, "upper": 31.0, "raw_lower": 29.0,
                "raw_upper": 31.0, "actual": actual, "cls": "accuracy/plateau", "scale": 100.0,
                "recalibrated": False}

    rows = [row(f"c{i}", cut, 30.0 + 0.5 * i) for i in range(12) for cut in (0.3, 0.5)]
    rec = tmp_path / "peers.json"
    rec.write_text(json.dumps({"rows": rows}))
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- recalibration-variants:start -->\n<!-- recalibration-variants:end -->\n")
    assert variants.main(["--record", str(rec), "--update-docs", str(doc)]) == 0
    out = json.loads((tmp_path / "recalibration_variants.json").read_text())
    raw = out["table"]["raw"]["project accuracy"]["pooled"]
    assert raw["n"] == 24 and raw["covered"] == 6  # actuals 30.0 .. 31.0 of 30.0 .. 35.5
    pkg = out["table"]["package"]["project accuracy"]["pooled"]
    assert pkg["covered"] > raw["covered"] and pkg["mean_width"] > raw["mean_width"]
    assert "| package | project accuracy |" in doc.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(UserError, match="no forecasts of ours"):
        variants.main(["--record", str(bad)])
    bad.write_text(json.dumps({"rows": 3}))
    with pytest.raises(UserError, match="'rows' must be a list"):
        variants.main(["--record", str(bad)])
    bad.write_text(json.dumps({"rows": [{k: v for k, v in rows[0].items() if k != "scale"}]}))
    with pytest.raises(UserError, match="lack scale"):
        variants.main(["--record", str(bad)])
    nodoc = tmp_path / "sub" / "nodoc.md"
    nodoc.parent.mkdir()
    nodoc.write_text("no block\n")
    (nodoc.parent / "peers.json").write_text(rec.read_text())
    with pytest.raises(UserError, match="block to update"):
        variants.main(["--record", str(nodoc.parent / "peers.json"), "--update-docs", str(nodoc)])
    assert sorted(p.name for p in nodoc.parent.iterdir()) == ["nodoc.md", "peers.json"]


def test_the_docs_show_the_committed_head_to_head_and_variants():
    """docs/ANALYSIS.md's head-to-head tables, targets and variants are the committed records'."""
    peers = load_script("studies/forecast_peers.py")
    variants = load_script("studies/recalibration_variants.py")
    doc = (peers.ROOT / "docs" / "ANALYSIS.md").read_text()
    rec = json.loads(peers.DEFAULT_JSON.read_text())
    assert peers.markdown_table(rec) in doc and peers.targets_markdown(rec) in doc
    assert peers.hindsight_markdown(rec) in doc
    assert rec["targets"] == peers.targets(rec["summary"])
    table = {name: variants.score(variants.variant_rows(rec["rows"], opts))
             for name, opts in variants.VARIANTS.items()}
    assert variants.markdown(table) in doc
    shipped = json.loads((peers.ROOT / "zhbert" / "analysis" / "interval_calibration.json")
                         .read_text())
    histories = [c for c in shipped["curves"] if c.startswith("results/")]
    assert histories == sorted(histories)  # every committed history, once
    assert len(shipped["curves"]) - len(histories) == 27  # and the public curves, lr withheld
    assert "results/training_history.json" not in shipped["curves"]  # the copy is left out


def test_perplexity_backtest_forecasts_the_log_and_records_each_way(tmp_path):
    study = load_script("studies/perplexity_backtest.py")
    out = tmp_path / "ppl.json"
    assert study.main(["--curves", str(_curves(tmp_path / "curves")), "--cuts", "0.5",
                       "--n-boot", "20", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert {r["way"] for r in rec["rows"]} == set(study.WAYS) and len(rec["rows"]) == 2 * 3
    s = rec["summary"]
    for way in study.WAYS:
        done = [r for r in rec["rows"] if r["way"] == way and r["ok"]]
        assert s[way]["n"] == len(done) and s[way]["covered"] == sum(r["covered"] for r in done)
    # the log's relative width is about the loss's times the loss (d ppl / ppl = d loss)
    loss, log = s["loss"]["mean_width"], s["perplexity, on its log"]["mean_width"]
    assert log > loss


def test_hindsight_is_the_narrowest_band_over_the_fewest_the_target_allows():
    from zhbert.analysis.scoring import binomial_band, hindsight_band

    report = load_script("studies/peers_report.py")
    errors = [0.0, 1.0, -1.0, 2.0, 10.0, -3.0] + [0.5] * 15  # 21 forecasts: the band's low end 18
    rows = [{"source": "s", "method": m, "cut": 0.5, "ok": True, "value": 50.0,
             "actual": 50.0 + e} for m in report.METHODS for e in errors]
    rows.append({"source": "s", "method": "ours", "cut": 0.3, "ok": True, "value": 0.0,
                 "actual": 99.0})  # another cut: not counted
    rows.append({"source": "s", "method": "ours", "cut": 0.5, "ok": False, "value": None,
                 "actual": 50.0})  # refused: not counted
    rec = {"rows": rows, "summary": {"s": {}}, "targets": {"s": {"width_limit": 10.0}}}
    h = report.hindsight(rec)["s"]["ours"]
    assert (h["n"], h["k"]) == (21, binomial_band(21)[0]) == (21, 18)
    # 18 of the 21: the 15 halves, 0, 1 and -1 or 2; the narrowest is [-1, 1] (or [0, 2]): 2
    assert h["band"] == pytest.approx(2.0) == hindsight_band(errors, 18)
    assert "| s | ours | 21 | 18 | 2.00 | 10 |" in report.hindsight_markdown(rec)
    assert report.hindsight_markdown(rec, "0.2").startswith("No forecasts at the 20% cut")
    with pytest.raises(ValueError, match="k must be"):
        hindsight_band([1.0], 2)
