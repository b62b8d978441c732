"""Other tools' logs (zhbert.analysis.sources): trainer_state.json, TensorBoard, CSV exports.

The fixtures are written by the real writers where they are installed (transformers'
``TrainerState.save_to_json``, torch's ``SummaryWriter``); the CSV kinds by the csv module in the
layouts those tools write. Every curve is small (tens of points) so each test takes seconds.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from helpers_scripts import load_script

from zhbert import history_schema as H
from zhbert.analysis import analyze, format_report, load_history, select_series
from zhbert.analysis import lower as lower_mod
from zhbert.analysis.schedule import Schedule, TabulatedSchedule, history_schedule
from zhbert.analysis.sources import direction_by_name, is_eval, load_source
from zhbert.analysis.synthetic import make_history
from zhbert.errors import EXIT_USER_ERROR, UserError, run_cli

N_BOOT = 20
TOTAL, WARMUP, PEAK = 300, 30, 5e-4


def _hf_lr(step: np.ndarray) -> np.ndarray:
    """Hugging Face's default schedule: linear warmup, then linear decay to 0 at TOTAL."""
    return PEAK * np.where(step < WARMUP, step / WARMUP, (TOTAL - step) / (TOTAL - WARMUP))


def _acc(step, seed=0):
    """A saturating accuracy curve with a little noise."""
    rng = np.random.default_rng(seed)
    return 0.7 - 0.6 * np.exp(-step / 80.0) + rng.normal(0, 0.004, step.size)


def _loss(step, seed=1):
    """A power-law loss curve with a little noise."""
    rng = np.random.default_rng(seed)
    return 2.0 + 3.0 * (step / 10.0) ** -0.5 + rng.normal(0, 0.01, step.size)


#: the logged steps and the curves every fixture writes
STEPS = np.arange(10, TOTAL + 1, 10)
ACC, LOSS, EVAL_LOSS, LR = _acc(STEPS), _loss(STEPS), _loss(STEPS, 2), _hf_lr(STEPS)


@pytest.fixture(scope="module")
def trainer_state(tmp_path_factory):
    """A trainer_state.json written by transformers: train entries every 10 steps, eval entries
    (loss, accuracy, runtime) every 10 steps, and the closing summary entry."""
    from transformers.trainer_callback import TrainerState

    state = TrainerState(max_steps=TOTAL, logging_steps=10, eval_steps=10, global_step=TOTAL)
    for i, step in enumerate(STEPS.tolist()):
        state.log_history.append({"loss": float(LOSS[i]), "grad_norm": 1.0, "learning_rate": LR[i],
                                  "epoch": step / 100, "step": step})
        state.log_history.append({"eval_loss": EVAL_LOSS[i], "eval_accuracy": ACC[i],
                                  "eval_runtime": 1.5, "eval_samples_per_second": 80.0,
                                  "epoch": step / 100, "step": step})
    state.log_history.append({"train_runtime": 99.0, "train_loss": 2.5, "epoch": 3.0,
                              "step": TOTAL})
    path = tmp_path_factory.mktemp("hf") / "trainer_state.json"
    state.save_to_json(str(path))
    return path


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """A run directory written by torch's SummaryWriter: train loss and lr, eval loss and
    accuracy."""
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path_factory.mktemp("tb") / "run"
    with SummaryWriter(str(run)) as w:
        for i, step in enumerate(STEPS.tolist()):
            w.add_scalar("train/loss", LOSS[i], step)
            w.add_scalar("train/learning_rate", LR[i], step)
            w.add_scalar("eval/loss", EVAL_LOSS[i], step)
            w.add_scalar("eval/accuracy", ACC[i], step)
    return run


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _main(argv):
    return load_script("analyze_100k.py").main(argv)


# -- format detection, metric choice, errors ------------------------------------------------------

def test_trainer_state_is_told_by_content_and_lists_its_candidates(trainer_state, tmp_path):
    renamed = tmp_path / "log.txt"
    renamed.write_bytes(trainer_state.read_bytes())
    with pytest.raises(UserError, match=r"several candidate metrics: eval_accuracy, eval_loss, "
                                        r"loss; pick one with --metric"):
        load_source(renamed)
    h = load_source(renamed, metric="eval_accuracy")
    s = select_series(h, "auto")
    assert (h.format, s.metric, s.kind, s.higher_is_better, s.n) == (
        "trainer_state", "eval_accuracy", "eval", True, TOTAL // 10)
    assert s.acc[-1] == pytest.approx(ACC[-1])
    sched = history_schedule(h)  # lr inferred from learning_rate, as for this project's lr column
    assert isinstance(sched, Schedule) and sched.kind == "linear"
    assert abs(sched.end - TOTAL) <= 10 and abs(sched.warmup - WARMUP) <= 10
    assert h.train[H.LOSS].iloc[-1] == pytest.approx(LOSS[-1])  # the training loss
    loss = select_series(load_source(trainer_state, metric="loss"), "auto")
    assert (loss.kind, loss.higher_is_better) == ("train", False)


def test_unknown_metric_and_a_wrong_series_name_what_is_there(trainer_state):
    with pytest.raises(UserError, match=r"--metric 'eval_f1' is not in this trainer_state.json; "
                                        r"it has: epoch, eval_accuracy, eval_loss, eval_runtime"):
        load_source(trainer_state, metric="eval_f1")
    with pytest.raises(UserError, match="--lr-metric 'lr' is not in"):
        load_source(trainer_state, metric="loss", lr_metric="lr")
    h = load_source(trainer_state, metric="eval_loss")
    with pytest.raises(UserError, match="eval_loss is a eval series, not train"):
        select_series(h, "train")


def test_tensorboard_directory_and_a_renamed_event_file(tensorboard_run, tmp_path):
    with pytest.raises(UserError, match=r"several candidate metrics: eval/accuracy, eval/loss, "
                                        r"train/loss"):
        load_source(tensorboard_run)
    h = load_source(tensorboard_run, metric="eval/loss")
    s = select_series(h, "auto")
    assert (h.format, s.kind, s.higher_is_better, s.n) == ("tensorboard", "eval", False, 30)
    assert s.acc[0] == pytest.approx(EVAL_LOSS[0], rel=1e-6)  # float32 on disk
    assert history_schedule(h).kind == "linear"
    event = next(tensorboard_run.glob("events.out.tfevents.*"))
    renamed = tmp_path / "scalars.bin"
    renamed.write_bytes(event.read_bytes())
    again = select_series(load_source(renamed, metric="eval/accuracy"), "auto")
    assert again.higher_is_better and again.acc[-1] == pytest.approx(ACC[-1],
                                                                     rel=1e-6)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(UserError, match="is a directory, read as a TensorBoard run, but it holds "
                                        "no event files"):
        load_source(empty)


def test_wandb_export_drops_its_bands_and_matches_the_metric_without_the_run(tmp_path):
    steps, acc = STEPS, ACC
    path = _write_csv(tmp_path / "wandb_export.csv",
                      ["Step", "run-7 - eval/acc", "run-7 - eval/acc__MIN", "run-7 - eval/acc__MAX"],
                      [[s, a, a - 0.01, a + 0.01] for s, a in zip(steps, acc, strict=True)])
    auto = select_series(load_source(path), "auto")
    assert (auto.metric, auto.kind, auto.higher_is_better) == ("run-7 - eval/acc", "eval", True)
    np.testing.assert_allclose(auto.acc, acc)
    assert select_series(load_source(path, metric="eval/acc"), "auto").metric == auto.metric
    assert load_source(path).format == "csv_wandb"


def test_step_value_export_needs_a_direction(tmp_path):
    path = _write_csv(tmp_path / "export.csv", ["Wall time", "Step", "Value"],
                      [[1.7e9 + s, s, v] for s, v in zip(STEPS, LOSS, strict=True)])
    with pytest.raises(UserError, match=r"cannot tell .* for 'Value'; pass --direction max"):
        load_source(path)
    s = select_series(load_source(path, direction="min"), "auto")
    assert (s.metric, s.higher_is_better, s.n) == ("Value", False, 30)
    assert load_source(path, direction="min").format == "csv_step_value"


def test_lightning_metrics_with_gaps_and_percent_accuracy(tmp_path):
    rows = []  # Lightning counts steps from 0: its step is ours - 1
    for i, step in enumerate(STEPS.tolist()):
        rows.append([step // 100, step - 1, LOSS[i], "", "", LR[i]])
        if step % 20 == 0:
            rows.append([step // 100, step - 1, "", EVAL_LOSS[i], 100 * ACC[i], ""])
    path = _write_csv(tmp_path / "metrics.csv",
                      ["epoch", "step", "train_loss", "val_loss", "val_acc", "lr-AdamW"], rows)
    with pytest.raises(UserError, match="several candidate metrics: train_loss, val_acc, val_loss"):
        load_source(path)
    h = load_source(path, metric="val_acc")
    s = select_series(h, "auto")
    assert (h.format, s.kind, s.n) == ("csv_lightning", "eval", 15)
    assert s.acc.min() > 0 and s.acc.max() < 1  # percent read as fractions, said in a warning
    assert any("read as percentages" in w for w in h.warnings)
    assert list(h.train[H.STEPS][:2]) == [9, 19] and H.LR in h.train  # lr-AdamW, every 10 steps
    assert history_schedule(h).kind == "linear"


def test_several_lr_series_are_an_error_unless_one_is_picked(tmp_path):
    path = _write_csv(tmp_path / "t.csv", ["step", "lr-AdamW/pg1", "lr-AdamW/pg2", "loss"],
                      [[s, a, a / 2, v] for s, a, v in zip(STEPS, LR, LOSS, strict=True)])
    with pytest.raises(UserError, match="several lr series: lr-AdamW/pg1, lr-AdamW/pg2; pick one "
                                        "with --lr-metric"):
        load_source(path)
    h = load_source(path, lr_metric="lr-AdamW/pg2")
    assert history_schedule(h).peak == pytest.approx(PEAK / 2, rel=0.02)


def test_a_wsd_table_gets_a_tabulated_schedule(tmp_path):
    steps = np.arange(100, 2001, 100)
    lr = np.where(steps <= 1600, 3e-4, 3e-4 * (2000 - steps) / 400 + 3e-5)
    path = _write_csv(tmp_path / "wsd.csv", ["step", "lr", "loss"],
                      [[s, a, b] for s, a, b in zip(steps, lr, _loss(steps), strict=True)])
    h = load_source(path)
    s = select_series(h, "auto")
    assert (h.format, s.metric, s.higher_is_better) == ("csv_table", "loss", False)
    sched = history_schedule(h)
    assert isinstance(sched, TabulatedSchedule) and sched.end == 2000
    assert sched.lr([1800]).item() == pytest.approx(3e-4 * 0.5 + 3e-5)
    s1, s2 = sched.areas([2000])
    assert s1[0] + s2[0] == pytest.approx(2000 - 100 / 2, rel=1e-3)  # S1 + S2 = steps after warmup


def test_bad_files_are_one_line_errors(tmp_path):
    cases = {"empty.csv": ("", "the file is empty"),
             "nostep.csv": ("epoch,loss\n1,2.0\n2,1.5\n", "CSV without a step column"),
             "other.json": ('{"foo": 1, "bar": 2}', "it holds: foo, bar"),
             "bad.bin": ("\0\1\2junk", "binary"),
             "badstep.csv": ("step,loss\n1,2.0\nx,1.5\n", "line 3: step 'x' is not a number")}
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(UserError, match=needle):
            load_source(path)


def test_names_say_the_direction():
    assert [direction_by_name(n) for n in ("eval_mlm_acc", "valid/perplexity", "top1", "val_err",
                                           "ferret", "learning_rate")] == [True, False, True,
                                                                          False, None, None]
    # a W&B column's run name says nothing: "lossy-test - train/acc" is a training accuracy
    assert direction_by_name("lossy-test - train/acc") is True
    assert not is_eval("lossy-test - train/acc") and is_eval("run - val_loss")


# -- this project's histories ---------------------------------------------------------------------

def test_this_projects_history_loads_as_before_and_offers_its_columns(tmp_path):
    path = tmp_path / "h.json"
    path.write_text(json.dumps(make_history(n=60, last_step=6000, eval_every=5, seed=3)))
    before, after = load_history(path), load_source(path)
    assert after.metric_series is None and after.format == before.format
    assert after.train.equals(before.train) and after.eval.equals(before.eval)
    s = select_series(load_source(path, metric=H.EVAL_LOSS), "auto")
    assert (s.kind, s.higher_is_better, s.n) == ("eval", False, 12)
    with pytest.raises(UserError, match="is not a column of this history; it has: "):
        load_source(path, metric="eval_f1")


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
    path = _write_csv(tmp_path / "curve.csv", ["step", "lr", "loss"],
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
    path = _write_csv(tmp_path / "b.csv", ["step", "eval_loss"],
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


def test_repeated_steps_keep_the_last_value_and_few_nan_points_are_dropped(tmp_path):
    values = LOSS.copy()
    values[[4, 9]] = np.nan
    rows = [[s, v] for s, v in zip(STEPS, values, strict=True)]
    rows[12:12] = [[STEPS[12], 99.0], [STEPS[13], 98.0]]  # a resumed run logs two steps again
    h = load_source(_write_csv(tmp_path / "r.csv", ["step", "val_loss"], rows))
    s = select_series(h, "auto")
    assert s.n == 28 and h.dropped_nonfinite == 2
    np.testing.assert_allclose(s.acc[10:12], LOSS[12:14])  # the later values win (2 NaN before)
    assert any("2 repeated step(s)" in w for w in h.warnings)
    assert any("dropped 2 val_loss point(s)" in w for w in h.warnings)
    values[:6] = np.nan
    with pytest.raises(UserError, match="7 of 30 val_loss points are NaN/inf"):
        load_source(_write_csv(tmp_path / "n.csv", ["step", "val_loss"],
                               [[s, v] for s, v in zip(STEPS, values, strict=True)]))
