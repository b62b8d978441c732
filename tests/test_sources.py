"""Other tools' logs (zhbert.analysis.sources, zhbert.analysis.readers): format told by content,
the metric and lr chosen, directions, percentages, schedules, one-line errors listing the series.
Fixtures: tests/helpers_logs.py (written by transformers' and torch's own writers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_logs import (
    ACC,
    EVAL_LOSS,
    LOSS,
    LR,
    PEAK,
    STEPS,
    TOTAL,
    WARMUP,
    loss_curve,
    write_csv,
    write_tensorboard,
    write_trainer_state,
)

from zhbert import history_schema as H
from zhbert.analysis import load_history, select_series
from zhbert.analysis.schedule import Schedule, TabulatedSchedule, history_schedule
from zhbert.analysis.sources import direction_by_name, is_eval, load_source
from zhbert.analysis.synthetic import make_history
from zhbert.errors import UserError


@pytest.fixture(scope="module")
def trainer_state(tmp_path_factory):
    """A trainer_state.json written by transformers (train and eval entries, the summary)."""
    return write_trainer_state(tmp_path_factory.mktemp("hf") / "trainer_state.json")


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """A TensorBoard run directory written by torch's SummaryWriter."""
    return write_tensorboard(tmp_path_factory.mktemp("tb") / "run")


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
    path = write_csv(tmp_path / "wandb_export.csv",
                      ["Step", "run-7 - eval/acc", "run-7 - eval/acc__MIN", "run-7 - eval/acc__MAX"],
                      [[s, a, a - 0.01, a + 0.01] for s, a in zip(steps, acc, strict=True)])
    auto = select_series(load_source(path), "auto")
    assert (auto.metric, auto.kind, auto.higher_is_better) == ("run-7 - eval/acc", "eval", True)
    np.testing.assert_allclose(auto.acc, acc)
    assert select_series(load_source(path, metric="eval/acc"), "auto").metric == auto.metric
    assert load_source(path).format == "csv_wandb"


def test_step_value_export_needs_a_direction(tmp_path):
    path = write_csv(tmp_path / "export.csv", ["Wall time", "Step", "Value"],
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
    path = write_csv(tmp_path / "metrics.csv",
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
    path = write_csv(tmp_path / "t.csv", ["step", "lr-AdamW/pg1", "lr-AdamW/pg2", "loss"],
                      [[s, a, a / 2, v] for s, a, v in zip(STEPS, LR, LOSS, strict=True)])
    with pytest.raises(UserError, match="several lr series: lr-AdamW/pg1, lr-AdamW/pg2; pick one "
                                        "with --lr-metric"):
        load_source(path)
    h = load_source(path, lr_metric="lr-AdamW/pg2")
    assert history_schedule(h).peak == pytest.approx(PEAK / 2, rel=0.02)


def test_a_wsd_table_gets_a_tabulated_schedule(tmp_path):
    steps = np.arange(100, 2001, 100)
    lr = np.where(steps <= 1600, 3e-4, 3e-4 * (2000 - steps) / 400 + 3e-5)
    path = write_csv(tmp_path / "wsd.csv", ["step", "lr", "loss"],
                      [[s, a, b] for s, a, b in zip(steps, lr, loss_curve(steps), strict=True)])
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


def test_repeated_steps_keep_the_last_value_and_few_nan_points_are_dropped(tmp_path):
    values = LOSS.copy()
    values[[4, 9]] = np.nan
    rows = [[s, v] for s, v in zip(STEPS, values, strict=True)]
    rows[12:12] = [[STEPS[12], 99.0], [STEPS[13], 98.0]]  # a resumed run logs two steps again
    h = load_source(write_csv(tmp_path / "r.csv", ["step", "val_loss"], rows))
    s = select_series(h, "auto")
    assert s.n == 28 and h.dropped_nonfinite == 2
    np.testing.assert_allclose(s.acc[10:12], LOSS[12:14])  # the later values win (2 NaN before)
    assert any("2 repeated step(s)" in w for w in h.warnings)
    assert any("dropped 2 val_loss point(s)" in w for w in h.warnings)
    values[:6] = np.nan
    with pytest.raises(UserError, match="7 of 30 val_loss points are NaN/inf"):
        load_source(write_csv(tmp_path / "n.csv", ["step", "val_loss"],
                               [[s, v] for s, v in zip(STEPS, values, strict=True)]))
