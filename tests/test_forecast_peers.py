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


def _curves(folder):
    folder.mkdir()
    for i, kind in enumerate(("cosine", "constant")):
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
    assert set(rec["summary"]) == {"public loss curves", "project accuracy", "project loss",
                                   "synthetic accuracy", "synthetic loss"}
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
    assert {"pooled_coverage_90_98", "per_cut_within_band", "width_at_50pct_at_most_3pct",
            "best_interval_score_on_two_thirds"} <= set(rec["targets"]["public loss curves"])
    assert rec["settings"]["n_boot"] == 20 and rec["wall_s"] > 0
    assert out.with_suffix(".md").read_text() == peers.markdown_table(rec)


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
