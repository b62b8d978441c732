"""``run.time_budget_s``: the run's length is re-planned from its pace, the schedule stretched to
it, and the history stays indexed by step."""

from __future__ import annotations

import doctest
import json
import time

import pytest

import zhbert.analysis.schedule as AS
import zhbert.training.loop as loop
import zhbert.training.schedule as TS
from zhbert.analysis.schedule import planned_schedule
from zhbert.config import build_config
from zhbert.errors import UserError
from zhbert.training.checkpoint import list_checkpoints
from zhbert.training.schedule import lr_at, plan_steps, scheduled_lr


def test_doc_examples():
    assert doctest.testmod(TS).failed == 0
    assert doctest.testmod(AS).failed == 0


def test_stretched_schedule_is_the_plan_over_fewer_steps():
    cfg = build_config("smoke", overrides=["optim.lr=1.0", "optim.warmup_steps=20",
                                           "run.max_steps=200"])
    for step in (0, 9, 50, 99):  # planned 100 of 200: warmup 10, end at 100
        assert scheduled_lr(cfg, step, 100) == pytest.approx(lr_at(1.0, step + 1, 10, 100))
    assert scheduled_lr(cfg, 99, 100) == 0.0
    assert scheduled_lr(cfg, 37, 200) == scheduled_lr(cfg, 37)  # no budget: unchanged


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


def test_analysis_reads_the_last_plan_of_a_budget_run():
    cfg = build_config("smoke", overrides=["optim.lr=0.001", "optim.warmup_steps=10",
                                           "run.max_steps=100"])
    meta = {"config": cfg.to_dict()}
    assert planned_schedule(meta).total == 100
    meta["time_budget"] = {"budget_s": 60.0, "planned_steps": 40, "max_steps": 100}
    sched = planned_schedule(meta)
    assert (sched.total, sched.warmup) == (40, 4) and "time budget" in sched.source


def test_a_slow_run_stops_within_its_budget(tiny_corpus, tmp_path, monkeypatch):
    """Steps slowed to >= 0.1 s against a 1.5 s budget: the run ends well before max_steps,
    with a final log point, evaluation and checkpoint at its last step, and the plan in meta."""
    real = loop.train_step

    def slow(s, p):
        real(s, p)
        time.sleep(0.1)

    monkeypatch.setattr(loop, "train_step", slow)
    cfg = build_config("smoke", overrides=[
        f"data.corpus_dir={tiny_corpus}", "run.max_steps=60", "run.log_interval=2",
        "run.eval_interval=50", "run.save_interval=50", "run.time_budget_s=1.5",
        "run.export_final=false", "optim.warmup_steps=6"])
    run_dir = tmp_path / "budget"
    summary = loop.train(cfg, run_dir, echo=lambda *_: None)
    h = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
    last = summary["steps"]
    assert 1 <= last < 60
    assert h["steps"][-1] == last and h["eval_steps"][-1] == last
    assert [s for s, _ in list_checkpoints(run_dir)][-1] == last
    assert h["meta"]["time_budget"] == {"budget_s": 1.5, "planned_steps": last, "max_steps": 60}
    assert h["lr"][-1] < max(h["lr"])  # the stretched schedule decays before the budget ends
    # a second session with the budget spent trains nothing more
    again = loop.train(cfg, run_dir, resume=True, echo=lambda *_: None)
    assert again["steps"] == last
