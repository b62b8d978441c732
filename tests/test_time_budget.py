"""``run.time_budget_s``: the run's length is planned from its pace, the lr schedule followed at
the rate the plan allows, and the history stays indexed by step."""

from __future__ import annotations

import doctest
import json
import time

import numpy as np
import pytest

import zhbert.analysis.schedule as AS
import zhbert.training.loop as loop
import zhbert.training.schedule as TS
from zhbert.analysis import load_history
from zhbert.analysis.schedule import planned_schedule
from zhbert.analysis.target import time_to_target
from zhbert.config import build_config
from zhbert.errors import UserError
from zhbert.training.checkpoint import list_checkpoints
from zhbert.training.schedule import advance, lr_at, plan_steps, scheduled_lr


def test_doc_examples():
    assert doctest.testmod(TS).failed == 0
    assert doctest.testmod(AS).failed == 0


def test_position_moves_forward_and_ends_the_schedule_at_the_plan():
    """A shorter plan speeds the schedule up, a longer one slows it down; it never goes back,
    and the position reaches run.max_steps exactly at the planned last step."""
    cfg = build_config("smoke", overrides=["optim.lr=1.0", "optim.warmup_steps=20",
                                           "run.max_steps=200"])
    pos, lrs = 0.0, []
    plans = [200] * 10 + [60] * 20 + [120] * 90  # re-planned at steps 10 and 30
    for step, planned in enumerate(plans):
        new = advance(pos, step, planned, 200)
        assert new > pos
        pos = new
        lrs.append(scheduled_lr(cfg, step, pos))
    assert pos == pytest.approx(200.0) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    peak = lrs.index(max(lrs))
    assert np.all(np.diff(lrs[peak:]) <= 0)  # no rise after the peak
    assert scheduled_lr(cfg, 37) == lr_at(1.0, 38, 20, 200)  # no budget: the step itself


def test_analysis_rebuilds_the_lr_of_every_step_from_the_knots():
    cfg = build_config("smoke", overrides=["optim.lr=1.0", "optim.warmup_steps=20",
                                           "run.max_steps=200"])
    pos, knots, lrs, plan = 0.0, [[0, 0.0]], [], 200
    for step in range(120):
        new_plan = 60 if step == 10 else 120 if step == 30 else plan
        if new_plan != plan:
            knots.append([step, pos])
            plan = new_plan
        pos = advance(pos, step, plan, 200)
        lrs.append(scheduled_lr(cfg, step, pos))
    meta = {"config": cfg.to_dict(),
            "time_budget": {"budget_s": 1.0, "planned_steps": 120, "max_steps": 200,
                            "knots": knots}}
    sched = planned_schedule(meta)
    assert sched.end == 120 and sched.warp is not None
    assert sched.lr(np.arange(1, 121)) == pytest.approx(lrs, abs=1e-9)


@pytest.mark.parametrize("step, elapsed, budget, expected", [
    (10, 5.0, 10.0, 20),  # half the budget used in 10 steps: 10 more
    (10, 5.0, 1000.0, 50),  # capped at max_steps
    (10, 12.0, 10.0, 10),  # over budget: stop now
    (0, 0.0, 10.0, 50),  # no pace yet
])
def test_plan_steps(step, elapsed, budget, expected):
    assert plan_steps(step, elapsed, budget, 50) == expected


def test_budget_must_be_a_finite_non_negative_number():
    for bad in ("-1", "inf"):
        with pytest.raises(UserError, match="time_budget_s"):
            build_config("smoke", overrides=[f"run.time_budget_s={bad}"])


def test_malformed_budget_block_falls_back_to_the_plain_plan():
    cfg = build_config("smoke", overrides=["run.max_steps=100"])
    for block in ({"knots": "x"}, {"knots": [[0, 0], [50, 10]], "planned_steps": 40,
                                   "max_steps": 100}):  # steps going back
        assert planned_schedule({"config": cfg.to_dict(), "time_budget": block}).warp is None


def test_a_slow_run_stops_within_its_budget(tiny_corpus, tmp_path, monkeypatch):
    """Steps slowed to >= 0.1 s against a 3 s budget: the run ends well before max_steps,
    with a final log point, evaluation and checkpoint at its last step, and the plan in meta."""
    real = loop.train_step

    def slow(s, p):
        real(s, p)
        time.sleep(0.1)

    monkeypatch.setattr(loop, "train_step", slow)
    cfg = build_config("smoke", overrides=[
        f"data.corpus_dir={tiny_corpus}", "run.max_steps=60", "run.log_interval=1",
        "run.eval_interval=50", "run.save_interval=50", "run.time_budget_s=3.0",
        "run.export_final=false", "optim.warmup_steps=6"])
    run_dir = tmp_path / "budget"
    summary = loop.train(cfg, run_dir, echo=lambda *_: None)
    h = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
    last = summary["steps"]
    assert 1 <= last < 60
    assert h["steps"][-1] == last and h["eval_steps"][-1] == last
    assert [s for s, _ in list_checkpoints(run_dir)][-1] == last
    block = h["meta"]["time_budget"]
    assert (block["budget_s"], block["planned_steps"], block["max_steps"]) == (3.0, last, 60)
    assert block["knots"][0] == [0, 0.0] and len(block["knots"]) >= 2
    # the analysis rebuilds the logged lr of every log point from the knots
    sched = planned_schedule(h["meta"])
    assert sched.lr(np.array(h["steps"])) == pytest.approx(h["lr"], rel=1e-6, abs=1e-12)
    peak = h["lr"].index(max(h["lr"]))
    assert np.all(np.diff(h["lr"][peak:]) <= 0)
    # time to a target on a budget run: the plan, not run.max_steps, is the last step
    ttt = time_to_target(load_history(run_dir / "training_history.json"), 0.99, n_boot=20)
    assert ttt["planned_last_step"] == last and ttt["status"] == "not_reached"
    # a second session with the same budget: the reached plan is final
    again = loop.train(cfg, run_dir, resume=True, echo=lambda *_: None)
    assert again["steps"] == last
    # extended without the budget: the position goes on to the new run.max_steps
    monkeypatch.undo()
    more = build_config("smoke", overrides=[
        f"data.corpus_dir={tiny_corpus}", "run.max_steps=70", "run.log_interval=1",
        "run.eval_interval=50", "run.save_interval=50", "run.export_final=false",
        "optim.warmup_steps=6"])
    assert loop.train(more, run_dir, resume=True, echo=lambda *_: None)["steps"] == 70
    h = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
    block = h["meta"]["time_budget"]
    assert (block["budget_s"], block["planned_steps"], block["max_steps"]) == (0, 70, 70)
    # the first session's plan ended there: at max_steps, or short of it when the pace fell
    # late (a loaded machine) and the budget ran out first
    assert block["knots"][-1][0] == last and 0 < block["knots"][-1][1] <= 60.0
    new = np.array(h["steps"]) > last  # this session follows the current config exactly
    sched = planned_schedule(h["meta"])
    lr = np.array(h["lr"])
    assert sched.lr(np.array(h["steps"])[new]) == pytest.approx(lr[new], rel=1e-6, abs=1e-12)
    assert lr[-1] == pytest.approx(0.0) and np.all(np.diff(lr[new]) <= 1e-12)
