"""Other tools' logs through the front ends: analyze_100k.py round trips (accuracy from a
trainer_state.json, loss from a CSV), one-line errors, comparisons, targets, figures, and one run
written by each tool (examples/other_logs.py) giving the analysis of its own history."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers_logs import (
    ACC,
    EVAL_LOSS,
    LOSS,
    LR,
    STEPS,
    TOTAL,
    write_csv,
    write_tensorboard,
    write_trainer_state,
)
from helpers_scripts import load_script

from zhbert import history_schema as H
from zhbert.analysis import analyze, format_report, load_history, select_series
from zhbert.analysis import lower as lower_mod
from zhbert.analysis.sources import load_source
from zhbert.analysis.synthetic import make_history
from zhbert.errors import EXIT_USER_ERROR, UserError, run_cli

N_BOOT = 20


@pytest.fixture(scope="module")
def trainer_state(tmp_path_factory):
    """A trainer_state.json written by transformers (train and eval entries, the summary)."""
    return write_trainer_state(tmp_path_factory.mktemp("hf") / "trainer_state.json")


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """A TensorBoard run directory written by torch's SummaryWriter."""
    return write_tensorboard(tmp_path_factory.mktemp("tb") / "run")


def _main(argv):
    return load_script("analyze_100k.py").main(argv)



# -- the command line -----------------------------------------------------------------------------

def test_cli_error_is_one_line_and_writes_nothing(trainer_state, tmp_path, capsys):
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as e:
        run_cli(_main, ["--history", str(trainer_state), "--output", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == EXIT_USER_ERROR and not out.exists()
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "several candidate metrics" in err
    with pytest.raises(SystemExit):
        run_cli(_main, ["--history", str(trainer_state), "--metric", "eval_loss",
                        "--target-acc", "0.5", "--output", str(out)])
    assert "--target-acc needs an accuracy metric" in capsys.readouterr().err
    assert not out.exists()


def test_cli_round_trip_of_a_trainer_state_accuracy_curve(trainer_state, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert _main(["--history", str(trainer_state), "--metric", "eval_accuracy", "--target",
                  "0.5", "--backtest", "--cuts", "0.5", "--n-boot", str(N_BOOT),
                  "--output", str(out)]) == 0
    r = json.loads(out.read_text())
    steps = STEPS
    assert r["input"]["format"] == "trainer_state" and r["data_points"] == 30
    assert r["metric"]["name"] == "eval_accuracy" and r["metric"]["direction"] == "max"
    assert r["mlm_stats"]["max"] == pytest.approx(ACC.max())
    assert r["pearson_correlation"] > 0.8 and r["series"]["kind"] == "eval"
    assert r["extrapolation"]["schedule"]["kind"] == "linear"
    assert r["extrapolation"]["target_step"] == pytest.approx(TOTAL, abs=10)
    first = float(steps[np.argmax(ACC >= 0.5)])
    assert (r["time_to_target"]["status"], r["time_to_target"]["step"]) == ("reached", first)
    assert r["backtest"]["rows"][0]["cut"] == 0.5 and r["backtest"]["metric"] == "eval_accuracy"
    assert "eval_accuracy: mean" in capsys.readouterr().out


def _fake_forecast(steps, values, schedule, target_step, *, noise_sd=None, level=0.95,
                   n_boot=200, seed=0):
    """A stand-in for zhbert.analysis.loss_forecast (written elsewhere): the last value +- 0.5."""
    v = float(values[-1])
    return {"ok": True, "reason": None, "value": v, "lower": v - 0.5, "upper": v + 0.5,
            "family": "last_value", "target_step": target_step, "n_points": len(values)}


def test_cli_round_trip_of_a_csv_loss_curve(tmp_path, capsys, monkeypatch):
    steps, loss = STEPS, LOSS
    path = write_csv(tmp_path / "curve.csv", ["step", "lr", "loss"],
                      [[s, a, b] for s, a, b in zip(steps, LR, loss, strict=True)])
    out = tmp_path / "r.json"
    args = ["--history", str(path), "--target-loss", "3.0", "--backtest", "--cuts", "0.3", "0.5",
            "--n-boot", str(N_BOOT), "--output", str(out)]
    if lower_mod.forecaster() is None:  # this branch: the loss forecaster is not merged yet
        assert _main(args) == 0
        r = json.loads(out.read_text())
        assert r["extrapolation"]["reason"] == lower_mod.NOT_AVAILABLE
        assert f"forecast: {lower_mod.NOT_AVAILABLE}" in capsys.readouterr().out
    monkeypatch.setattr(lower_mod, "forecaster", lambda: _fake_forecast)
    assert _main(args) == 0
    r = json.loads(out.read_text())
    assert r["input"]["format"] == "csv_table" and r["mlm_stats"] is None
    m = r["metric"]
    assert (m["name"], m["direction"], m["best"]) == ("loss", "min", pytest.approx(loss.min()))
    assert m["best_step"] == float(steps[np.argmin(loss)])
    assert r["pearson_correlation"] < -0.7 and r["loss_stats"]["final"] == pytest.approx(loss[-1])
    assert set(r["curve_fits"]) == {"linear", "log_linear", "loss_power_law"}
    x = r["extrapolation"]
    assert x["ok"] and x["ci95"] == [pytest.approx(loss[-1] - 0.5), pytest.approx(loss[-1] + 0.5)]
    rows = r["backtest"]["rows"]
    assert [row["n_points"] for row in rows] == [9, 15] and r["backtest"]["n_forecast"] == 2
    assert rows[0]["forecast"] == pytest.approx(loss[8])
    t = r["time_to_target"]
    first = float(steps[np.argmax(loss <= 3.0)])
    assert (t["status"], t["step"], t["higher_is_better"]) == ("reached", first, False)
    text = capsys.readouterr().out
    assert "loss (lower is better): best" in text and "target 3 (loss, lower is better" in text


def test_report_of_a_lower_metric_says_its_values_as_they_are(trainer_state):
    h = load_source(trainer_state, metric="eval_loss")
    r = analyze(h, n_boot=N_BOOT)
    text = format_report(r)
    assert "steps-eval_loss analysis (lower is better)" in text
    assert f"best {r['metric']['best']:.4g} at step" in text
    assert math.isclose(r["metric"]["best"], min(select_series(h, "auto").acc))


def test_visualize_draws_a_loss_curve_from_tensorboard(tensorboard_run, tmp_path, capsys):
    figures = tmp_path / "fig"
    assert load_script("visualize_results.py").main(
        ["--history", str(tensorboard_run), "--metric", "eval/loss", "--out-dir",
         str(figures)]) == 0
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["correlation_analysis.png", "learning_curve_fit.png", "loss_analysis.png",
                     "phases.png", "training_curves.png"]
    assert "skipped" in capsys.readouterr().out  # no backtest in this analysis


def test_the_same_run_written_by_each_tool_gives_the_same_analysis(tmp_path, capsys):
    """examples/other_logs.py writes one history with each tool's writer: every log read back
    gives the held-out accuracy's correlation and forecast of this project's own history."""
    path = tmp_path / "h.json"
    path.write_text(json.dumps(make_history(n=60, last_step=6000, eval_every=5, seed=3)))
    logs = tmp_path / "logs"
    assert load_script("examples/other_logs.py").main(["--history", str(path), "--out-dir",
                                                        str(logs)]) == 0
    written = json.loads(capsys.readouterr().out)
    assert set(written) == {"trainer_state", "tensorboard", "wandb", "lightning"}
    native = analyze(load_history(path), n_boot=N_BOOT)
    for log, metric in (("trainer_state.json", "eval_accuracy"), ("tensorboard", "eval/accuracy"),
                        ("metrics.csv", "val_acc")):
        r = analyze(load_source(logs / log, metric=metric), n_boot=N_BOOT)
        assert r["data_points"] == native["data_points"] == 12, log
        assert r["pearson_correlation"] == pytest.approx(native["pearson_correlation"], rel=1e-6)
        assert r["extrapolation"]["schedule"]["kind"] == "cosine", log
        assert r["extrapolation"]["value"] == pytest.approx(native["extrapolation"]["value"],
                                                            abs=1e-4), log
    wandb = select_series(load_source(logs / "wandb_export.csv"), "auto")
    assert (wandb.metric, wandb.higher_is_better) == ("demo - eval/loss", False)
    np.testing.assert_allclose(wandb.acc, load_history(path).eval[H.EVAL_LOSS])


def test_comparing_loss_runs_uses_their_minimum_and_refuses_mixed_directions(trainer_state,
                                                                              tmp_path):
    path = write_csv(tmp_path / "b.csv", ["step", "eval_loss"],
                      [[s, v + 0.2] for s, v in zip(STEPS, EVAL_LOSS, strict=True)])
    a, b = load_source(trainer_state, metric="eval_loss"), load_source(path)
    r = analyze(a, n_boot=0, compare=[("b", b)], label="a")
    runs = r["comparison"]["runs"]
    assert [run["best"] for run in runs] == [pytest.approx(EVAL_LOSS.min()),
                                             pytest.approx(EVAL_LOSS.min() + 0.2)]
    assert runs[0]["max_acc"] is None
    assert r["comparison"]["matched"][0]["mean_diff"] == pytest.approx(0.2)
    assert "final 2." in format_report(r) and "best 2." in format_report(r)
    with pytest.raises(UserError, match="metrics go opposite ways: a \\(eval_loss\\), b "
                                        "\\(eval_accuracy\\)"):
        analyze(a, n_boot=0, compare=[("b", load_source(trainer_state, metric="eval_accuracy"))],
                label="a")


def test_target_flags_are_checked_against_the_metric(trainer_state, tmp_path, capsys):
    out = tmp_path / "r.json"
    for argv, needle in (
            (["--metric", "eval_accuracy", "--target", "57"], "--target must be an accuracy "
                                                             "fraction in (0, 1) for eval_accuracy"),
            (["--metric", "eval_accuracy", "--target-loss", "2"], "--target-loss needs a "
                                                                  "lower-is-better metric"),
            (["--metric", "loss", "--target", "2", "--target-loss", "2"], "give one target")):
        with pytest.raises(SystemExit):
            run_cli(_main, ["--history", str(trainer_state), *argv, "--output", str(out)])
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def _sparse_trainer_state(path, evals: int, upto: int):
    """A run in progress evaluated every 40 steps: ``evals`` eval entries, train entries to
    ``upto``, written by transformers."""
    from transformers.trainer_callback import TrainerState

    state = TrainerState(max_steps=TOTAL, logging_steps=10, eval_steps=40, global_step=upto)
    for i, step in enumerate(STEPS.tolist()):
        if step > upto:
            break
        state.log_history.append({"loss": float(LOSS[i]), "learning_rate": LR[i], "step": step})
        if step % 40 == 0 and step // 40 <= evals:
            state.log_history.append({"eval_loss": EVAL_LOSS[i], "eval_accuracy": ACC[i],
                                      "eval_runtime": 1.5, "step": step})
    state.save_to_json(str(path))
    return path


def test_a_trainer_that_evaluates_a_few_times_is_analysed_and_forecast(tmp_path, capsys):
    """Four eval points of a run with a known schedule: the analysis runs (sections that need
    more points say n/a), the loss is forecast at the planned last step; two points refuse."""
    path = _sparse_trainer_state(tmp_path / "trainer_state.json", evals=4, upto=160)
    out = tmp_path / "r.json"
    assert _main(["--history", str(path), "--metric", "eval_loss", "--n-boot", str(N_BOOT),
                  "--output", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["data_points"] == 4 and r["series"]["kind"] == "eval"
    x = r["extrapolation"]
    assert x["ok"] and x["target_step"] == pytest.approx(TOTAL, abs=10)
    assert x["ci95"][0] < x["value"] < x["ci95"][1]
    assert x["value"] < EVAL_LOSS[15]  # still falling after step 160
    text = capsys.readouterr().out
    assert "series: eval (4 points)" in text and "change n/a" in text  # a quarter with 1 point
    (tmp_path / "two").mkdir()
    two = _sparse_trainer_state(tmp_path / "two" / "trainer_state.json", evals=2, upto=160)
    with pytest.raises(SystemExit):
        run_cli(_main, ["--history", str(two), "--metric", "eval_loss", "--output",
                        str(tmp_path / "r2.json")])
    err = capsys.readouterr().err
    assert "only 2 eval_loss points; at least 3 are needed" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r2.json").exists()
