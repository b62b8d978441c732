"""Watching a run live: TensorBoard events equal the history, resumes do not duplicate steps,
and the live forecast columns are the analysis forecast of the points seen so far."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers_plots import write_history, zhbert_history
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import main_train
from examples import tensorboard_png
from zhbert.analysis import load_history
from zhbert.baselines import read_baselines
from zhbert.errors import UserError
from zhbert.history_schema import FORECAST_KEYS
from zhbert.plots import figures_training as ft
from zhbert.training.live_forecast import MIN_FORECAST_POINTS, live_forecast
from zhbert.training.monitor import format_duration, remaining_seconds

BASE = ["--preset", "smoke", "--set", "run.export_final=false", "--set", "run.tensorboard=true",
        "--set", "run.log_interval=2", "--set", "run.eval_interval=2"]


@pytest.fixture
def no_plateau_floor(monkeypatch):
    """The smoke runs stay on the unigram plateau, where the trainer makes no forecast; tests of
    the forecast columns' mechanics lift that floor (tested on its own below)."""
    import zhbert.training.monitor as M

    monkeypatch.setattr(M, "unigram_floor", lambda meta: None)


def _events(run_dir) -> EventAccumulator:
    """TensorBoard's own reader over RUN/tensorboard (every scalar kept)."""
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


def _scalars(acc: EventAccumulator, tag: str) -> tuple[list[int], np.ndarray]:
    events = acc.Scalars(tag)
    return [e.step for e in events], np.array([e.value for e in events], dtype=np.float32)


def _history(run_dir) -> dict:
    return json.loads((run_dir / "training_history.json").read_text())


def _check_mirror(run_dir) -> dict:
    """Event scalars equal the history's columns at the same steps, each step once."""
    h, acc = _history(run_dir), _events(run_dir)
    steps, values = _scalars(acc, "eval/mlm_acc")
    assert steps == h["eval_steps"]
    np.testing.assert_array_equal(values, np.array(h["eval_mlm_acc"], dtype=np.float32))
    steps, values = _scalars(acc, "train/loss")
    assert steps == h["steps"]
    np.testing.assert_array_equal(values, np.array(h["loss"], dtype=np.float32))
    made = [s for s, f in zip(h["eval_steps"], h["eval_forecast_acc"], strict=True)
            if f is not None]
    steps, values = _scalars(acc, "forecast/final_acc")
    assert steps == made
    np.testing.assert_array_equal(values, np.array([f for f in h["eval_forecast_acc"]
                                                    if f is not None], dtype=np.float32))
    baselines = read_baselines(h["meta"])
    assert baselines  # the trainer counts them at the start of every run
    for name, value in baselines.items():
        steps, values = _scalars(acc, f"baselines/{name}")
        assert steps == h["eval_steps"] and set(values.tolist()) == {np.float32(value)}
    return h


def test_events_mirror_history_and_forecast_columns(tiny_corpus, tmp_path, no_plateau_floor):
    run = tmp_path / "run"
    args = [*BASE, "--set", f"data.corpus_dir={tiny_corpus}", "--set", "run.max_steps=16",
            "--run-dir", str(run)]
    assert main_train.main(args) == 0
    h = _check_mirror(run)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    n = len(h["eval_steps"])
    assert all(len(h[k]) == n for k in FORECAST_KEYS)
    # each row holds the forecast of the held-out points up to it (none before enough points)
    made = 0
    for i in range(n):
        fc = live_forecast(h["eval_steps"][:i + 1], h["eval_mlm_acc"][:i + 1],
                           h["meta"]["config"], seed=42)
        if i < MIN_FORECAST_POINTS - 1 or fc is None:
            assert h["eval_forecast_acc"][i] is None
            continue
        made += 1
        assert h["eval_forecast_step"][i] == 16
        assert h["eval_forecast_acc"][i] == pytest.approx(fc["acc"], rel=1e-12)
        assert h["eval_forecast_low"][i] <= h["eval_forecast_acc"][i] <= h["eval_forecast_high"][i]
    assert made >= 1
    assert all(e is not None and e >= 0 for e in h["eval_eta_s"][1:]) and h["eval_eta_s"][-1] == 0
    log = (run / "train.log").read_text()
    assert log.count("forecast at step 16:") == made
    png = tmp_path / "tb.png"
    assert tensorboard_png.main(["--logdir", str(run / "tensorboard"), "--out", str(png),
                                 "--dpi", "50"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UserError, match="no TensorBoard event files"):
        tensorboard_png.main(["--logdir", str(tmp_path), "--out", str(png)])


def test_resumed_run_continues_the_curves_without_duplicates(no_plateau_floor, tiny_corpus, tmp_path):
    """A run that logged up to step 12 but whose last checkpoints are lost resumes at step 4;
    the events the first session wrote after step 4 are purged by TensorBoard's reader."""
    run = tmp_path / "run"
    args = [*BASE, "--set", f"data.corpus_dir={tiny_corpus}", "--set", "run.max_steps=12",
            "--set", "run.save_interval=4", "--set", "run.keep_last=4", "--run-dir", str(run)]
    assert main_train.main(args) == 0
    first = _history(run)
    for step in (8, 10, 12):  # milestone 10 of the smoke preset too
        shutil.rmtree(run / "checkpoints" / f"step_{step}", ignore_errors=True)
    assert main_train.main([*args, "--resume"]) == 0
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    h = _check_mirror(run)
    assert h["meta"]["resumed"][0]["step"] == 4
    assert h["eval_steps"] == first["eval_steps"] == list(range(2, 13, 2))
    assert h["eval_mlm_acc"] == first["eval_mlm_acc"]  # the resume is exact


def test_forecast_off_and_tensorboard_off(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    args = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", "--set",
            "run.export_final=false", "--set", "run.forecast=false", "--set", "run.max_steps=10",
            "--set", "run.eval_interval=1", "--run-dir", str(run)]
    assert main_train.main(args) == 0
    h = _history(run)
    assert len(h["eval_steps"]) == 10 and set(h["eval_forecast_acc"]) == {None}
    assert not (run / "tensorboard").exists()  # off in the smoke preset


def test_live_forecast_recovers_a_known_curve():
    steps = np.arange(50, 1050, 50, dtype=float)
    truth = 0.5 - 0.12 * (steps / 1000) ** -0.5
    seen = truth[:10] + np.random.default_rng(0).normal(0, 0.002, 10)
    plan = {"run": {"max_steps": 1000}}  # no optimizer section: a forecast in step units
    fc = live_forecast(steps[:10], seen, plan)
    assert fc["step"] == 1000
    assert fc["low"] <= truth[-1] <= fc["high"] and fc["low"] < fc["acc"] < fc["high"]
    assert fc["acc"] == pytest.approx(truth[-1], abs=0.01)
    assert live_forecast(steps[:MIN_FORECAST_POINTS - 1], seen[:MIN_FORECAST_POINTS - 1],
                         plan) is None
    # a constant schedule may end before max_steps (config.validate allows it): no error
    plan = {"run": {"max_steps": 1000}, "optim": {"lr": 1e-3, "warmup_steps": 10,
                                                   "schedule": "constant", "total_steps": 300}}
    assert live_forecast(steps[:10], seen, plan)["step"] == 1000


def test_live_forecast_on_the_bigram_plateau_is_recalibrated():
    steps = np.arange(50, 1050, 50, dtype=float)
    truth = 0.16 - 0.05 * (steps / 1000) ** -0.5  # levels off just under the bigram tables
    seen = truth[:10] + np.random.default_rng(1).normal(0, 0.002, 10)
    plan = {"run": {"max_steps": 1000}}
    meta = {"baselines": {"acc": {"unigram": 0.05, "left_bigram": 0.16, "right_bigram": 0.15}}}
    raw, wide = live_forecast(steps[:10], seen, plan), live_forecast(steps[:10], seen, plan,
                                                                     meta=meta)
    assert wide["acc"] == raw["acc"] and wide["low"] <= raw["low"]
    assert wide["high"] > raw["high"]  # the plateau class widens upwards (a climb may follow)
    ctx = {"baselines": {"acc": {"left_bigram": 0.02, "right_bigram": 0.02}}}
    assert live_forecast(steps[:10], seen, plan, meta=ctx)["high"] >= raw["high"]


def test_small_helpers():
    assert remaining_seconds(60, 100, (50, 10.0), 20.0) == pytest.approx(40.0)
    assert remaining_seconds(50, 100, (50, 10.0), 20.0) is None
    assert remaining_seconds(100, 100, (50, 10.0), 20.0) == 0
    assert [format_duration(s) for s in (42, 760, 11100)] == ["42s", "12m40s", "3h05m"]


def test_training_curves_draw_the_live_forecasts(tmp_path, monkeypatch):
    data = zhbert_history(n_eval=10)
    n, last = len(data["eval_steps"]), data["eval_steps"][-1]
    fc = [None] * 4 + [0.6 + 0.01 * i for i in range(n - 4)]
    data.update(eval_forecast_step=[None] * 4 + [last] * (n - 4), eval_forecast_acc=fc,
                eval_forecast_low=[None if v is None else v - 0.02 for v in fc],
                eval_forecast_high=[None if v is None else v + 0.03 for v in fc],
                eval_eta_s=[10.0] * n)
    drawn = {}

    def spy(fig, path, dpi):
        drawn["axes"] = fig.axes
        return tmp_path / "x.png"

    monkeypatch.setattr(ft, "save_figure", spy)
    ft.training_curves(load_history(write_history(tmp_path, "h.json", data)), None,
                       tmp_path / "x.png")
    ax = drawn["axes"][0]
    handles, labels = ax.get_legend_handles_labels()
    (i,) = [k for k, lab in enumerate(labels) if "live forecast" in lab]
    assert f"({last:,})" in labels[i]
    line = handles[i].lines[0]
    assert line.get_xdata().tolist() == data["eval_steps"][4:]
    np.testing.assert_allclose(line.get_ydata(), fc[4:])


def test_presets_switch_tensorboard_and_forecast():
    from zhbert.config import get_preset

    on = {name: get_preset(name).run.tensorboard for name in ("paper", "efficient", "demo", "smoke")}
    assert on == {"paper": True, "efficient": True, "demo": True, "smoke": False}
    assert all(get_preset(name).run.forecast for name in ("paper", "efficient", "demo"))


def test_no_live_forecast_on_the_unigram_plateau(tiny_corpus, tmp_path):
    """12 smoke steps stay under the unigram baseline: every forecast column is empty."""
    run = tmp_path / "plateau"
    assert main_train.main([*BASE, "--set", f"data.corpus_dir={tiny_corpus}", "--set",
                            "run.max_steps=12", "--set", "run.tensorboard=false",
                            "--run-dir", str(run)]) == 0
    h = _history(run)
    assert max(h["eval_mlm_acc"][-3:]) < 1.25 * read_baselines(h["meta"])["unigram"]
    assert h["eval_forecast_acc"] == [None] * len(h["eval_steps"])
