"""analyze_100k.py --target-acc: reached (finished run), forecast (partial run), not reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zhbert import history_schema as H
from zhbert.analysis import load_history
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.synthetic import make_scheduled_history, scheduled_truth
from zhbert.analysis.target import first_crossing, format_target, time_to_target

ROOT = Path(__file__).resolve().parents[1]
PLAN = Schedule(peak=1e-3, warmup=50, total=1000, kind="cosine")
SHAPE = {"A": 1.0, "s0": 0.01, "alpha": 0.5, "B": 0.05, "s2": 0.2, "beta": 1.0, "top": 0.6,
         "gamma": 0.5}


def _history(tmp_path: Path, upto: int = 1000) -> tuple[Path, dict]:
    """A synthetic 1,000-step run (held-out point every 50 steps, 0.5 s a step), cut at ``upto``."""
    h = make_scheduled_history(PLAN, n=200, eval_every=10, seed=3, shape=SHAPE)
    h[H.ELAPSED_S] = [0.5 * s for s in h[H.STEPS]]
    keep = sum(s <= upto for s in h[H.STEPS])
    keep_eval = sum(s <= upto for s in h[H.EVAL_STEPS])
    for k, v in h.items():
        if isinstance(v, list):
            del v[keep_eval if k.startswith(H.EVAL_PREFIX) else keep:]
    path = tmp_path / f"h{upto}.json"
    path.write_text(json.dumps(h))
    return path, h


def _truth(step: float) -> float:
    return float(scheduled_truth(np.array([float(step)]), PLAN, SHAPE)[0])


def test_first_crossing_interpolates():
    steps, vals = np.array([0.0, 10.0, 20.0]), np.array([0.1, 0.2, 0.4])
    assert first_crossing(steps, vals, 0.3) == pytest.approx(15.0)
    assert first_crossing(steps, vals, 0.05) == 0.0
    assert first_crossing(steps, vals, 0.5) is None


def test_finished_run_reached_and_not_reached(tmp_path):
    path, h = _history(tmp_path)
    hist = load_history(path)
    target = _truth(400)
    r = time_to_target(hist, target, n_boot=40)
    first = next(s for s, a in zip(h[H.EVAL_STEPS], h[H.EVAL_MLM_ACC], strict=True) if a >= target)
    assert r["status"] == "reached" and r["step"] == first and r["series"] == "eval"
    assert r["elapsed_s"] == pytest.approx(0.5 * first)
    lo, hi = r["step_ci95"]
    assert lo <= hi and lo < first + 100 and hi > first - 100
    top = max(h[H.EVAL_MLM_ACC]) + 0.01
    r = time_to_target(hist, top, n_boot=40)
    assert r["status"] == "not_reached" and r["step"] is None
    assert r["text"] == "not reached within the planned schedule"


def test_partial_run_forecast_and_beyond_the_plan(tmp_path):
    path, h = _history(tmp_path, upto=500)
    hist = load_history(path)
    assert max(h[H.EVAL_MLM_ACC]) < _truth(800)
    r = time_to_target(hist, _truth(800), n_boot=40)
    assert r["status"] == "forecast" and r["planned_last_step"] == 1000 and r["last_step"] == 500
    lo, hi = r["step_ci95"]
    assert 500 <= r["step"] <= 1000 and lo <= r["step"] and (hi is None or hi >= r["step"])
    assert lo <= 800 and (hi is None or hi >= 800)  # the interval holds the true crossing
    assert r["elapsed_s"] == pytest.approx(0.5 * r["step"], rel=1e-6)  # extrapolated at the pace
    r = time_to_target(hist, 0.9, n_boot=40)
    assert r["status"] == "not_reached" and r["forecast_at_planned"]["value"] < 0.9


def test_cli_prints_the_target_and_refuses_bad_values(tmp_path):
    path, _ = _history(tmp_path, upto=500)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "a.json"
    cmd = [sys.executable, "analyze_100k.py", "--history", str(path), "--output", str(out),
           "--n-boot", "40"]
    ok = subprocess.run([*cmd, "--target-acc", "0.9"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "target 90.00% (eval series): not reached within the planned schedule" in ok.stdout
    assert json.loads(out.read_text())["time_to_target"]["status"] == "not_reached"
    bad = subprocess.run([*cmd, "--target-acc", "50"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--target-acc must be an accuracy fraction" in bad.stderr


def test_partial_run_on_the_unigram_plateau_is_unknown(tmp_path):
    """No forecast (the series is under 1.25 x its recorded unigram baseline): an unfinished
    run says it cannot tell, instead of 'not reached within the planned schedule'."""
    path, h = _history(tmp_path, upto=500)
    h["meta"]["baselines"] = {"acc": {"unigram": max(h[H.EVAL_MLM_ACC]) * 2}}
    path.write_text(json.dumps(h))
    r = time_to_target(load_history(path), 0.9, n_boot=20)
    assert r["status"] == "unknown" and r["step"] is None and r["step_ci95"] == [None, None]
    assert "unigram plateau" in r["forecast_at_planned"]["reason"]
    text = format_target(r)
    assert "no forecast yet" in text and "within the planned schedule" not in text
