"""zhbert.analysis.recalibrate: split-conformal recalibration of forecast intervals by class."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from zhbert.analysis import load_history, select_series
from zhbert.analysis import recalibrate as R
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.synthetic import make_scheduled_history

PLAN = Schedule(1e-3, 100, 4000, "cosine")
BASELINES = {"acc": {"unigram": 0.02, "left_bigram": 0.05, "right_bigram": 0.04,
                     "gap_trigram": 0.1}}


def _records(n, rng, sd_true=2.0, cls="accuracy/context"):
    """Forecasts whose raw +-1 point intervals are too narrow: the truth scatters by sd_true."""
    out = []
    for _ in range(n):
        v = 0.3 + 0.01 * rng.normal()
        out.append({"cls": cls, "kind": "accuracy", "value": v, "lower": v - 0.01,
                    "upper": v + 0.01, "actual": v + 0.01 * sd_true * rng.normal()})
    return out


def test_phase_uses_the_best_bigram_table_plus_the_pad():
    b = {"left_bigram": 0.16, "right_bigram": 0.17}
    assert R.phase(0.17 + R.PLATEAU_PAD - 1e-6, b) == "plateau"
    assert R.phase(0.17 + R.PLATEAU_PAD + 1e-6, b) == "context"
    assert R.phase(0.3, {"unigram": 0.05}) is None and R.phase(float("nan"), b) is None
    assert R.series_class("loss", np.array([0.3, 0.31]), {"baselines": BASELINES}) == "loss/context"
    assert R.series_class("accuracy", np.array([]), {"baselines": BASELINES}) is None
    with pytest.raises(ValueError, match="unknown kind"):
        R.series_class("perplexity", np.array([0.3]), None)


def test_fit_takes_the_conformal_rank_and_narrows_only_from_a_large_pool():
    rng = np.random.default_rng(0)
    recs = _records(79, rng)
    cal = R.fit(recs)["classes"]["accuracy/context"]
    up = sorted(R.excess("accuracy", r["value"], r["lower"], r["upper"], r["actual"])[0]
                for r in recs)
    assert cal["n"] == 79 and cal["upper"] == pytest.approx(up[math.ceil(80 * 0.975) - 1])
    wide = [{**r, "lower": r["value"] - 0.2, "upper": r["value"] + 0.2} for r in recs]
    assert R.fit(wide)["classes"]["accuracy/context"]["upper"] < 0  # 79: may narrow
    small = R.fit(wide[:20])["classes"]["accuracy/context"]
    assert small["upper"] == 0.0 and small["lower"] == 0.0  # 20: too few to narrow
    assert R.fit(recs[: R.MIN_POOL - 1])["classes"] == {}
    assert R.fit([{**r, "cls": None} for r in recs])["classes"] == {}


def test_recalibrated_intervals_cover_held_out_forecasts():
    rng = np.random.default_rng(1)
    cal = R.fit(_records(200, rng))
    test = _records(400, rng)
    raw = np.mean([r["lower"] <= r["actual"] <= r["upper"] for r in test])
    new = [R.apply("accuracy", r["value"], r["lower"], r["upper"], r["cls"], cal) for r in test]
    cov = np.mean([n["lower"] <= r["actual"] <= n["upper"] for n, r in zip(new, test,
                                                                          strict=True)])
    assert raw < 0.5 and 0.9 <= cov <= 1.0
    assert all(n["lower"] <= r["value"] <= n["upper"] and n["raw"] == [r["lower"], r["upper"]]
               for n, r in zip(new, test, strict=True))


def test_apply_clips_accuracy_and_leaves_unknown_classes():
    cal = {"classes": {"accuracy/plateau": {"n": 50, "upper": 50.0, "lower": 50.0},
                       "loss/plateau": {"n": 50, "upper": 1.0, "lower": 1.0}}}
    r = R.apply("accuracy", 0.5, 0.45, 0.55, "accuracy/plateau", cal)
    assert r["lower"] == 0.0 and r["upper"] == 1.0
    loss = R.apply("loss", 4.0, 3.9, 4.1, "loss/plateau", cal)  # width 5 % of 4.0: root 5**0.5
    assert loss["upper"] == pytest.approx(4.1 + math.sqrt(5.0) * 4.0 / 100)
    assert R.apply("accuracy", 0.5, 0.45, 0.55, "accuracy/context", cal) is None
    assert R.apply("accuracy", 0.5, 0.45, 0.55, None, cal) is None


def _history(tmp_path, baselines=True):
    h = make_scheduled_history(PLAN, n=200, seed=1, eval_every=10)
    if baselines:
        h["meta"]["baselines"] = BASELINES
    path = tmp_path / ("b.json" if baselines else "nb.json")
    path.write_text(json.dumps(h))
    return load_history(path)


def test_recalibrated_replaces_the_interval_of_a_classed_history(tmp_path):
    h = _history(tmp_path)
    s = select_series(h, "auto")
    f = {"ok": True, "value": 0.35, "ci95": [0.34, 0.36]}
    cal = {"classes": {"accuracy/context": {"n": 30, "upper": 1.0, "lower": 0.5}}}
    out = R.recalibrated(f, h, s, float(s.steps[-1]), cal)
    assert out["recalibration"]["applied"] and out["recalibration"]["class"] == "accuracy/context"
    assert out["ci95_raw"] == [0.34, 0.36] and out["ci95"][1] == pytest.approx(
        0.36 + math.sqrt(2.0) / 100)
    assert f["ci95"] == [0.34, 0.36]  # the input is not changed
    old = _history(tmp_path, baselines=False)  # this project's format, no baselines: the kind
    kind = R.recalibrated(f, old, s, float(s.steps[-1]), cal)
    assert kind["recalibration"] == {"applied": False, "class": "accuracy",
                                     "why": "the calibration has no entry for accuracy"}
    both = {"classes": {**cal["classes"], "accuracy": {"n": 30, "upper": 2.0, "lower": 0.0}}}
    assert R.recalibrated(f, old, s, float(s.steps[-1]), both)["ci95"][1] == pytest.approx(
        0.36 + 2 * math.sqrt(2.0) / 100)
    other = dataclasses.replace(old, format="trainer_state")  # another tool's log: no class
    none = R.recalibrated(f, other, s, float(s.steps[-1]), both)
    assert not none["recalibration"]["applied"] and "baselines" in none["recalibration"]["why"]
    assert none["ci95"] == [0.34, 0.36] and "ci95_raw" not in none
    refused = R.recalibrated({"ok": False, "value": None, "ci95": [None, None]}, h, s, 1e9, cal)
    assert refused["recalibration"]["why"] == "no interval to recalibrate"


def test_the_shipped_calibration_has_its_command_and_classes():
    cal = R.default_calibration()
    assert cal["command"].startswith("python studies/forecast_peers.py --write-calibration")
    assert cal["classes"] and all(v["n"] >= R.MIN_POOL for v in cal["classes"].values())
    assert set(cal["classes"]) <= {f"{k}/{p}" for k in ("accuracy", "loss")
                                   for p in R.PHASES} | {"accuracy", "loss", R.NO_SCHEDULE}
    for kind in ("accuracy", "loss"):  # the kind pools every phase and the unknown ones
        assert cal["classes"][kind]["n"] > sum(v["n"] for k, v in cal["classes"].items()
                                               if k.split("/")[-1] in R.PHASES
                                               and k.startswith(kind + "/"))
    # the public curves with their lr withheld: large enough for the conformal rank
    assert cal["classes"][R.NO_SCHEDULE]["n"] >= 39


def test_a_loss_without_its_lr_schedule_is_widened_whatever_its_source(tmp_path):
    """A loss-only CSV (a W&B or TensorBoard export) is forecast in steps: the annealing still
    to come is unknown, and the class fitted on the public curves without their lr widens it;
    the same curve with its lr column keeps the forecaster's own interval."""
    from zhbert.analysis import analyze
    from zhbert.analysis.sources import load_source

    steps = np.arange(100, 3001, 100, dtype=float)
    loss = 2.5 + 4.0 * (steps / 100) ** -0.4
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * steps / 6000))
    blind, seen = tmp_path / "loss.csv", tmp_path / "loss_lr.csv"
    blind.write_text("step,loss\n" + "".join(f"{a:g},{b:.6f}\n"
                                              for a, b in zip(steps, loss, strict=True)))
    seen.write_text("step,lr,loss\n" + "".join(f"{a:g},{c:.6g},{b:.6f}\n"
                                                for a, b, c in zip(steps, loss, lr, strict=True)))
    x = analyze(load_source(blind), n_boot=40)["extrapolation"]
    rc = x["recalibration"]
    assert x["time_axis"] == "steps" and rc["applied"] and rc["class"] == R.NO_SCHEDULE
    assert x["ci95"][0] < x["ci95_raw"][0] and x["ci95"][1] > x["ci95_raw"][1]
    y = analyze(load_source(seen), n_boot=40)["extrapolation"]
    assert y["time_axis"] == "lr_area" and not y["recalibration"]["applied"]
    assert "ci95_raw" not in y


def test_the_no_schedule_class_does_not_pool_into_the_loss_class():
    recs = [{"cls": R.NO_SCHEDULE, "kind": "loss", "value": 3.0, "lower": 2.9, "upper": 3.1,
             "actual": 3.0 + 0.01 * i} for i in range(12)]
    classes = R.fit(recs)["classes"]
    assert set(classes) == {R.NO_SCHEDULE} and classes[R.NO_SCHEDULE]["n"] == 12


def test_the_norm_is_recorded_and_read_back():
    rng = np.random.default_rng(2)
    recs = _records(50, rng)
    cal = R.fit(recs, norm="additive")
    assert cal["norm"] == "additive"
    shift = cal["classes"]["accuracy/context"]["upper"]
    r = R.apply("accuracy", 0.3, 0.29, 0.31, "accuracy/context", cal)
    assert r["upper"] == pytest.approx(max(0.31 + shift / 100, 0.3))  # points, not scaled
    with pytest.raises(ValueError, match="unknown norm"):
        R.fit(recs, norm="log")
    wide = [{**r, "lower": r["value"] - 0.2, "upper": r["value"] + 0.2} for r in recs[:20]]
    small = R.fit(wide, narrow_small_pools=True)["classes"]["accuracy/context"]
    assert small["lower"] < 0 and small["upper"] < 0  # allowed to narrow although only 20


def test_the_analysis_recalibrates_a_plateau_backtest_of_a_project_history(tmp_path):
    from pathlib import Path

    from zhbert.analysis import analyze

    src = Path(__file__).resolve().parents[1] / "results" / "tuning" / "base_history.json"
    copy = tmp_path / "h.json"
    copy.write_text(src.read_text())
    out = analyze(load_history(copy), n_boot=40, backtest_cuts=[0.5])
    row = out["backtest"]["rows"][0]
    rc = row["recalibration"]
    assert rc["applied"] and rc["class"] == "accuracy/plateau" and rc["n"] >= R.MIN_POOL
    lo, hi = row["ci95"]
    raw_lo, raw_hi = row["ci95_raw"]
    assert lo <= raw_lo and hi > raw_hi  # the plateau class widens, upwards most
    assert hi - raw_hi > raw_lo - lo
    assert row["covered"] == (lo <= out["backtest"]["actual"]["value"] <= hi)
    assert out["extrapolation"]["recalibration"]["class"] == "accuracy/context"  # the end


def test_a_perplexity_is_forecast_and_recalibrated_as_the_exp_of_its_loss(tmp_path):
    """A perplexity is exp(loss): its forecast and its recalibrated interval are the loss's,
    exponentiated, with and without its lr column."""
    from zhbert.analysis import analyze, format_report
    from zhbert.analysis.sources import load_source

    steps = np.arange(100, 3001, 100, dtype=float)
    loss = 2.5 + 4.0 * (steps / 100) ** -0.4
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * steps / 3000))
    for with_lr in (False, True):
        paths = {}
        for name, values in (("loss", loss), ("perplexity", np.exp(loss))):
            head, cells = ("step,lr," if with_lr else "step,"), []
            for a, b, c in zip(steps, values, lr, strict=True):
                cells.append(f"{a:g},{c:.6g},{b:.17g}\n" if with_lr else f"{a:g},{b:.17g}\n")
            paths[name] = tmp_path / f"{name}_{with_lr}.csv"
            paths[name].write_text(head + name + "\n" + "".join(cells))
        x = analyze(load_source(paths["loss"]), n_boot=30)["extrapolation"]
        y = analyze(load_source(paths["perplexity"]), n_boot=30)["extrapolation"]
        assert y["transform"] == "log" and "transform" not in x
        assert y["value"] == pytest.approx(math.exp(x["value"]), rel=1e-6)
        assert y["ci95"] == pytest.approx([math.exp(v) for v in x["ci95"]], rel=1e-6)
        assert y["recalibration"]["applied"] == x["recalibration"]["applied"] == (not with_lr)
    assert "on the log of the perplexity (a loss)" in format_report(
        analyze(load_source(paths["perplexity"]), n_boot=30))
