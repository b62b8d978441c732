"""The forecast backtest (library and ``analyze_100k.py --backtest``), targets past the plan, and
which series an analysis uses (never a silent switch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zhbert.analysis import analyze, load_history, select_series
from zhbert.analysis.backtest import actual_value, backtest
from zhbert.analysis.schedule import Schedule, history_schedule
from zhbert.analysis.synthetic import make_scheduled_history

ROOT = Path(__file__).resolve().parents[1]
PLAN = Schedule(1e-3, 200, 10_000, "cosine")


def _history(tmp_path: Path, **kw) -> Path:
    p = tmp_path / "h.json"
    p.write_text(json.dumps(make_scheduled_history(PLAN, **{"n": 400, "seed": 1, **kw})))
    return p


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "analyze_100k.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_backtest_cli_writes_the_table_the_json_and_the_figure(tmp_path):
    hist = _history(tmp_path, eval_every=10)
    out = tmp_path / "res" / "a.json"
    out.parent.mkdir()
    res = _run("--history", str(hist), "--backtest", "--n-boot", "40", "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert "回测 | Backtest" in res.stdout and "coverage" in res.stdout
    r = json.loads(out.read_text())
    bt = r["backtest"]
    assert [row["cut"] for row in bt["rows"]] == [0.1, 0.2, 0.3, 0.5]
    assert bt["series_kind"] == "eval" and bt["target_step"] == 10_000
    truth = json.loads(hist.read_text())["eval_mlm_acc"][-1]
    assert bt["actual"]["value"] == pytest.approx(truth)
    done = [row for row in bt["rows"] if row["covered"] is not None]
    assert done and bt["n_forecast"] == len(done)
    for row in done:
        lo, hi = row["ci95"]
        assert lo <= row["forecast"] <= hi
        assert row["error"] == pytest.approx(row["forecast"] - truth)
        assert row["covered"] == (lo <= truth <= hi)
    assert bt["coverage"] == pytest.approx(np.mean([row["covered"] for row in done]))
    assert (out.parent / "backtest.png").stat().st_size > 10_000
    assert r["extrapolation"]["target_step"] == 10_000  # the planned last step by default


def test_backtest_actual_of_a_training_series_is_a_tail_mean(tmp_path):
    h = load_history(_history(tmp_path, noise=0.02))
    s = select_series(h, "train")
    a = actual_value(h, s)
    assert a["value"] == pytest.approx(s.acc[-20:].mean()) and "last 20" in a["how"]
    b = backtest(h, s, history_schedule(h), cuts=(0.3, 0.6), n_boot=30)
    assert b["series_kind"] == "train" and len(b["rows"]) == 2
    assert b["rows"][1]["n_points"] == int((s.steps <= 6000).sum())


def test_bad_cuts_and_targets_past_the_plan_are_one_line_errors(tmp_path):
    hist = _history(tmp_path)
    res = _run("--history", str(hist), "--backtest", "--cuts", "0.5", "1.5")
    assert res.returncode == 2 and res.stderr.strip().startswith("error: --cuts")
    res = _run("--history", str(hist), "--target-step", "20000", "--n-boot", "10",
               "--output", str(tmp_path / "x.json"))
    assert res.returncode == 2 and "--continue-lr" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()
    res = _run("--history", str(hist), "--target-step", "20000", "--continue-lr", "2e-4",
               "--n-boot", "10", "--output", str(tmp_path / "x.json"))
    assert res.returncode == 0, res.stderr
    x = json.loads((tmp_path / "x.json").read_text())["extrapolation"]
    assert x["target_step"] == 20_000 and x["schedule"]["continue_lr"] == 2e-4
    res = _run("--history", str(hist), "--continue-lr", "fast")
    assert res.returncode == 2 and "--continue-lr" in res.stderr


def test_a_short_held_out_series_is_replaced_loudly(tmp_path):
    data = make_scheduled_history(PLAN, n=100, seed=2, eval_every=25)  # 4 held-out points
    data["meta"]["config"]["data"] = {"mask_rate": 0.25, "eval_mask_rate": 0.15}
    p = tmp_path / "short.json"
    p.write_text(json.dumps(data))
    r = analyze(load_history(p), n_boot=10)
    assert r["series"]["kind"] == "train"
    assert "only 4 points" in r["series"]["reason"] and "0.25 vs 0.15" in r["series"]["reason"]


def test_calibration_script_tables_histories_and_synthetic_truths(tmp_path):
    hist = _history(tmp_path, eval_every=10)
    out = tmp_path / "cal.json"
    res = subprocess.run([sys.executable, "studies/forecast_calibration.py", "--histories",
                          str(hist), "--synthetic", "3", "--cuts", "0.3", "0.5", "--n-boot", "20",
                          "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    cal = json.loads(out.read_text())
    real = [r for r in cal["rows"] if r["source"] == "real"]
    assert {r["series"] for r in real} == {"train", "eval"} and len(real) == 4
    synth = [r for r in cal["rows"] if r["source"].startswith("synthetic")]
    assert len(synth) == 6 and all(0 < r["actual"] < 1 for r in synth)
    done = [r for r in cal["rows"] if r["covered"] is not None]
    assert cal["summary"]["coverage_cuts_from_20pct"] == pytest.approx(
        np.mean([r["covered"] for r in done]))
    assert "| source | series | cut |" in res.stdout


def test_backtest_of_a_history_that_ran_past_its_inferred_plan(tmp_path):
    """An original-format history whose lr column ends its cosine before the last logged step:
    the backtest forecasts the last step with the plan's last lr held, instead of refusing."""
    steps = np.arange(100, 12_001, 100)
    lr = Schedule(1e-3, 300, 11_000, "cosine").lr(steps)
    rng = np.random.default_rng(0)
    acc = 0.55 - 0.4 * np.exp(-steps / 3000.0) + rng.normal(0, 0.01, steps.size)
    p = tmp_path / "h.json"
    p.write_text(json.dumps({"steps": steps.tolist(), "mlm_acc": acc.tolist(),
                             "loss": (6 - 4 * acc).tolist(), "lr": lr.tolist()}))
    h = load_history(p)
    plan = history_schedule(h)
    assert plan.total == 11_000
    bt = backtest(h, select_series(h, "train"), plan, cuts=(0.5,), n_boot=20)
    assert bt["target_step"] == 12_000 and bt["schedule"]["continue_lr"] == 0.0
    assert bt["n_forecast"] == 1 and bt["rows"][0]["covered"] is not None


def test_backtest_keeps_a_stated_continuation(tmp_path):
    steps = np.arange(100, 12_001, 100)
    acc = 0.55 - 0.4 * np.exp(-steps / 3000.0)
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"steps": steps.tolist(), "mlm_acc": acc.tolist()}))
    h = load_history(path)
    plan = Schedule(1e-3, 300, 11_000, "cosine").with_continuation("2e-4")
    bt = backtest(h, select_series(h, "train"), plan, cuts=(0.5,), n_boot=20)
    assert bt["schedule"]["continue_lr"] == pytest.approx(2e-4)


def test_a_cut_before_the_first_held_out_point_is_a_row_without_forecast(tmp_path):
    """Held-out points every 200 steps of a 1,987-step run: the 10 % cut (198.7) holds none;
    it is reported as such, and the other cuts still forecast (this crashed make demo)."""
    from zhbert.analysis.history import load_history as load

    steps = list(range(200, 1801, 200)) + [1987]
    acc = [0.13 + 0.3 * (1 - np.exp(-s / 700)) for s in steps]
    h = {"meta": {}, "steps": steps, "mlm_acc": acc, "loss": [3.0] * len(steps),
         "eval_steps": steps, "eval_mlm_acc": acc, "eval_stderr": [0.005] * len(steps)}
    path = tmp_path / "h.json"
    path.write_text(json.dumps(h))
    history = load(path)
    out = backtest(history, select_series(history), None, cuts=(0.1, 0.5), n_boot=20)
    first, half = out["rows"]
    assert first["n_points"] == 0 and first["forecast"] is None and "no point" in first["reason"]
    assert half["n_points"] == 4


def test_backtest_reports_width_and_interval_score_beside_coverage(tmp_path):
    """Every forecast row carries its width and its interval score (width + 40 x the miss at
    95 %); the summary holds their means, the rows without a forecast hold None."""
    h = load_history(_history(tmp_path, eval_every=10))
    b = backtest(h, select_series(h, "eval"), history_schedule(h), cuts=(0.02, 0.3, 0.6),
                 n_boot=30)
    actual = b["actual"]["value"]
    done = [r for r in b["rows"] if r["covered"] is not None]
    assert done and b["level"] == 0.95
    for r in done:
        lo, hi = r["ci95"]
        miss = max(lo - actual, 0.0) + max(actual - hi, 0.0)
        assert r["width"] == pytest.approx(hi - lo)
        assert r["interval_score"] == pytest.approx(hi - lo + 40.0 * miss)
        assert (miss == 0) == r["covered"]
    assert b["mean_width"] == pytest.approx(np.mean([r["width"] for r in done]))
    assert b["mean_interval_score"] == pytest.approx(np.mean([r["interval_score"] for r in done]))
    assert all(r["width"] is None and r["interval_score"] is None
               for r in b["rows"] if r["covered"] is None)


def test_an_unrecorded_held_out_noise_is_read_off_the_tail_not_the_early_fall(tmp_path):
    """A CSV of a held-out loss (no standard error recorded) that fell steeply at first: the
    actual's noise is the measured noise near the end, not the early fall's slope changes, so
    the backtest's intervals are not widened by the trend."""
    rng = np.random.default_rng(0)
    steps = np.arange(200, 20_001, 200)
    noise = 0.002
    loss = 2.5 + 6.0 * (steps / 200.0) ** -0.6 + rng.normal(0, noise, steps.size)
    path = tmp_path / "eval.csv"
    path.write_text("step,eval_loss\n" + "".join(f"{s},{v}\n" for s, v in zip(steps, loss,
                                                                              strict=True)))
    from zhbert.analysis import load_source
    from zhbert.analysis.trend import noise_sd
    h = load_source(path)
    s = select_series(h)
    a = actual_value(h, s)
    assert a["value"] == pytest.approx(loss[-1]) and "second differences" in a["how"]
    assert 0.5 * noise < a["stderr"] < 2 * noise  # the noise that was put in
    assert noise_sd(s.acc) > 10 * noise  # what first differences of the whole curve say
    b = backtest(h, s, None, cuts=(0.5,), n_boot=40)
    row = b["rows"][0]
    assert row["covered"] and row["width"] < 0.1 * loss[-1]  # first differences: about 0.36
