"""Planned lr schedules, lr areas and the model-averaged forecast (zhbert.analysis.forecast)."""

import numpy as np
import pytest

from zhbert.analysis.forecast import forecast_final, tail_weights, weighted_quantiles
from zhbert.analysis.schedule import Schedule, infer, planned_schedule
from zhbert.analysis.synthetic import make_scheduled_history, scheduled_truth
from zhbert.errors import UserError
from zhbert.lr_schedule import lr_factor


def test_lr_factor_matches_the_documented_schedule():
    assert lr_factor(5, 10, 100) == pytest.approx(0.5)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, "linear") == pytest.approx(0.5)
    assert lr_factor(100, 10, 100) == 0.0 and lr_factor(500, 10, 100, "constant") == 1.0
    assert np.allclose(lr_factor(np.array([1, 10, 100]), 10, 100), [0.1, 1.0, 0.0])


def test_areas_of_constant_and_cosine_schedules():
    s1, s2 = Schedule(2.0, 0, 100, "constant").areas([10, 50])
    assert np.allclose(s1, [10, 50]) and np.allclose(s2, 0)
    s1, s2 = Schedule(1.0, 10, 110, "cosine").areas([10, 110])
    assert s1[0] == pytest.approx(5.5)  # 1/10 + 2/10 + ... + 10/10
    assert s1[1] == pytest.approx(5.5 + 50, abs=0.6)  # half of the decay's 100 steps
    assert s2[1] == pytest.approx(50, abs=0.6)  # peak minus lr, summed over the decay


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_infer_recovers_the_schedule_from_an_lr_column(kind):
    steps = np.arange(10, 1001, 10)
    true = Schedule(3e-4, 100, 1000, kind)
    got = infer(steps, true.lr(steps))
    assert got.kind == kind and got.warmup == 100 and got.peak == pytest.approx(3e-4)
    assert got.total == (None if kind == "constant" else 1000)
    # the first 30% of a cosine column still pins its end
    if kind == "cosine":
        assert infer(steps[:30], true.lr(steps[:30])).total == pytest.approx(1000, abs=2)


def test_infer_refuses_an_lr_column_of_another_shape():
    steps = np.arange(1, 101)
    assert infer(steps, 1e-3 * np.abs(np.sin(steps / 7.0)) + 1e-5) is None


def test_planned_schedule_prefers_the_config_in_meta():
    meta = {"config": {"optim": {"lr": 1e-3, "warmup_steps": 5, "schedule": "linear",
                                 "total_steps": 0}, "run": {"max_steps": 50}}}
    s = planned_schedule(meta, [1, 2, 3], [1.0, 1.0, 1.0])
    assert (s.kind, s.total, s.source) == ("linear", 50, "meta")
    assert planned_schedule({}, None, None) is None


def test_targets_past_the_plan_are_refused_unless_continued():
    s = Schedule(1e-3, 10, 100, "cosine")
    with pytest.raises(UserError, match="past the planned last step"):
        forecast_final(np.arange(5, 51, 5), np.linspace(0.1, 0.3, 10), s, target_step=200)
    held = s.with_continuation("1e-4")
    assert held.continue_lr == pytest.approx(1e-4)
    s1, _ = held.areas([100, 200])
    assert s1[1] - s1[0] == pytest.approx(100 * 1e-4 / 1e-3)
    assert s.with_continuation("constant").continue_lr == 0.0  # cosine ends at lr 0
    with pytest.raises(UserError, match="continue-lr"):
        s.with_continuation("-1")


def _cut(hist, frac, key="mlm_acc"):
    steps = np.asarray(hist["steps"], float)
    m = steps <= frac * steps[-1]
    return steps[m], np.asarray(hist[key])[m]


def test_forecast_covers_a_known_truth_and_defaults_to_the_planned_end():
    sched = Schedule(1e-3, 50, 2000, "cosine")
    hist = make_scheduled_history(sched, n=200, noise=0.004, rho=0.3, seed=3)
    steps, acc = _cut(hist, 0.5)
    f = forecast_final(steps, acc, sched, n_boot=30, seed=0)
    truth = hist["meta"]["truth"]["final_acc"]
    assert f["ok"] and f["target_step"] == 2000 and f["target_source"].startswith("planned")
    assert f["time_axis"] == "lr_area" and f["interval_for"] == "curve"
    lo, hi = f["ci95"]
    assert lo <= truth <= hi and abs(f["value"] - truth) < 0.02
    assert sum(v["weight"] for v in f["families"].values()) == pytest.approx(1.0)
    # the same data forecast as one measured point: a wider interval
    g = forecast_final(steps, acc, sched, n_boot=30, seed=0, measurement_sd=0.02)
    assert g["interval_for"] == "one measured point"
    assert g["ci95"][1] - g["ci95"][0] > hi - lo


def test_forecast_without_schedule_works_in_steps():
    steps = np.arange(10, 1001, 10, dtype=float)
    acc = 0.5 - 0.4 * (steps / 100) ** -0.5
    f = forecast_final(steps, acc, None, n_boot=20)
    assert f["ok"] and f["time_axis"] == "steps" and f["target_step"] == 2000
    assert f["value"] == pytest.approx(0.5 - 0.4 * 20**-0.5, abs=0.01)
    assert not any(k.endswith("_steps") for k in f["families"])


def test_fits_at_a_bound_are_flagged_and_get_no_weight():
    steps = np.arange(10, 501, 10, dtype=float)
    acc = np.minimum(0.5 + 0.0009 * steps, 1.0)  # straight line heading past 100 %
    f = forecast_final(steps, acc, None, n_boot=10)
    pl = f["families"]["power_law"]
    assert "a" in pl["at_bound"] and pl["weight"] == 0.0 and pl["asymptote"] is None
    assert pl["excluded"].startswith("parameter(s) at a bound")
    assert 0.0 <= f["ci95"][0] <= f["ci95"][1] <= 1.0


def test_too_few_points_refused_and_accelerating_curves_flagged():
    f = forecast_final([10, 20, 30], [0.1, 0.2, 0.3], None)
    assert not f["ok"] and "points" in f["reason"] and "schedule" in f["reason"]
    plan = Schedule(peak=1e-3, warmup=10, total=300, kind="linear")
    f2 = forecast_final([10, 20, 30], [0.1, 0.2, 0.25], plan)  # a known schedule needs 4, not 5
    assert not f2["ok"] and "at least 4" in f2["reason"]
    steps = np.arange(10, 301, 10, dtype=float)
    plateau_escape = 0.05 + 0.3 / (1 + np.exp(-(steps - 280) / 20))
    g = forecast_final(steps, plateau_escape, None, n_boot=20)
    assert g["accelerating"] is True and "accelerating" in g["note"]
    assert g["ok"] and g["ci95"][0] <= g["value"] <= g["ci95"][1]
    r = forecast_final(steps, plateau_escape, None, when_accelerating="refuse")
    assert not r["ok"] and "accelerating" in r["reason"]
    with pytest.raises(ValueError, match="when_accelerating"):
        forecast_final(steps, plateau_escape, None, when_accelerating="skip")


def test_four_points_with_a_known_schedule_are_forecast():
    plan = Schedule(peak=1e-3, warmup=10, total=400, kind="cosine")
    steps = np.array([50.0, 100.0, 150.0, 200.0])
    truth = 0.4 - 0.3 * (steps / 100) ** -0.5
    f = forecast_final(steps, truth, plan, n_boot=20)
    assert f["ok"] and f["n_points"] == 4
    assert f["ci95"][0] <= 0.25 <= f["ci95"][1]  # the law's value at step 400
    g = forecast_final(steps[1:], truth[1:], plan, n_boot=20)  # 3 points: too few
    assert not g["ok"] and "at least 4" in g["reason"]


def test_weights_and_weighted_quantiles():
    w = tail_weights({"a": 1.0, "b": 1.0, "c": None}, n_eff=10)
    assert w == {"a": 0.5, "b": 0.5}
    w = tail_weights({"a": 1.0, "b": 4.0}, n_eff=2)  # ratio^(n/2) = 1/4
    assert w["b"] == pytest.approx(0.2)
    vals = np.arange(1000, dtype=float)[:, None]
    q = weighted_quantiles(vals, np.ones(1000), [0.5])
    assert q[0, 0] == pytest.approx(499.5, abs=1)
    heavy = np.where(np.arange(1000) >= 500, 9.0, 1.0)
    assert weighted_quantiles(vals, heavy, [0.5])[0, 0] > 600


def test_scheduled_truth_rises_while_the_lr_anneals():
    sched = Schedule(1e-3, 10, 1000, "cosine")
    shape = {"A": 1.0, "s0": 0.01, "alpha": 0.5, "B": 0.1, "s2": 0.1, "beta": 1.0, "top": 0.5,
             "gamma": 0.5}
    y = scheduled_truth(np.array([900.0, 1000.0]), sched, shape)
    flat = dict(shape, B=0.0)
    y0 = scheduled_truth(np.array([900.0, 1000.0]), sched, flat)
    assert y[1] > y[0] and (y[1] - y[0]) > (y0[1] - y0[0])


def test_no_forecast_on_the_unigram_plateau():
    """A series still within PLATEAU_MARGIN of the unigram baseline is not forecast (with the
    reason); the same series without a recorded baseline, or one that has left the plateau,
    is."""
    from zhbert.analysis.readiness import PLATEAU_MARGIN

    steps = np.arange(10, 401, 10, dtype=float)
    rise = 0.05 + 0.3 * (1 - np.exp(-steps / 80))
    plateau = np.full_like(steps, 0.05) + np.random.default_rng(0).normal(0, 0.002, steps.size)
    f = forecast_final(steps, plateau, None, n_boot=10, floor=0.05)
    assert not f["ok"] and "unigram plateau" in f["reason"]
    assert f"{PLATEAU_MARGIN:g} x" in f["reason"]
    assert forecast_final(steps, rise, None, n_boot=10, floor=0.05)["ok"]
    assert "unigram plateau" not in (forecast_final(steps, plateau, None, n_boot=10)["reason"]
                                     or "")


def test_infer_a_sampled_column_whose_warmup_is_off_the_logging_grid():
    """A 100K-step history logging lr every 100 steps, warmup 2,345: the samples hold neither the
    peak nor the warmup's end; the refit still ends the plan at the last logged step, so the
    history's own last step is a valid target (it was refused as 'past the plan' at 99,990)."""
    steps = np.arange(100, 100_001, 100)
    for kind in ("cosine", "linear"):
        got = infer(steps, Schedule(1e-4, 2345, 100_000, kind).lr(steps))
        assert got.kind == kind and got.total == 100_000 and abs(got.warmup - 2345) <= 5
        assert got.peak == pytest.approx(1e-4, rel=1e-3)
    acc = 0.6 - 0.4 * np.exp(-steps / 20_000.0)
    plan = infer(steps, Schedule(1e-4, 2345, 100_000).lr(steps))
    f = forecast_final(steps[:300], acc[:300], plan, target_step=100_000, n_boot=20)
    assert f["ok"] and f["target_step"] == 100_000


def test_infer_a_cosine_decay_to_a_floor_and_its_areas():
    steps = np.arange(50, 20_001, 50)
    true = Schedule(6e-4, 400, 20_000, "cosine", final=0.1)
    assert true.lr([20_000, 30_000]) == pytest.approx([6e-5, 6e-5])  # the floor holds after
    got = infer(steps, true.lr(steps))
    assert (got.kind, got.total, got.final) == ("cosine", 20_000, pytest.approx(0.1, abs=1e-3))
    # a floor that is ignored would leave 10% of the peak unaccounted for at the end
    assert infer(steps, true.lr(steps)).areas([20_000])[0] == pytest.approx(
        true.areas([20_000])[0], rel=1e-3)


def test_a_target_inside_the_observed_steps_is_never_refused():
    """Past the plan's end but not past the data: the history shows training went on there."""
    steps = np.arange(10, 1201, 10)
    acc = 0.5 - 0.3 * np.exp(-steps / 300.0)
    f = forecast_final(steps, acc, Schedule(1e-3, 10, 1000, "cosine"), target_step=1100, n_boot=20)
    assert f["ok"] and f["target_step"] == 1100
    with pytest.raises(UserError, match="past the planned last step"):
        forecast_final(steps, acc, Schedule(1e-3, 10, 1000, "cosine"), target_step=1300)


def test_infer_keeps_a_plan_that_ends_after_the_data():
    """A run stopped (or logged last) before its plan's end keeps the fitted end; only an end
    fitted just before the last logged step is moved onto it."""
    steps = np.arange(1, 997)
    got = infer(steps, Schedule(1e-3, 50, 1000, "cosine").lr(steps))
    assert got.total == 1000
    steps = np.arange(0, 1000, 10)  # a log grid from 0: the last log is step 990 of 1,000
    got = infer(steps, Schedule(1e-3, 50, 1000, "cosine").lr(steps))
    assert got.total == 1000


def test_a_forecast_ahead_of_the_data_does_not_end_below_the_curve():
    """An accelerating curve that a log-linear fit undershoots: the forecast and its interval
    stay at or above the level the curve has reached (less the level's own noise)."""
    steps = np.arange(12, 241, 12, dtype=float)
    acc = 0.03 + 0.09 / (1 + np.exp(-(steps - 170) / 25))  # still climbing at the cut
    f = forecast_final(steps, acc, None, 480.0, n_boot=40, families=["log_linear"])
    assert f["ok"]
    level = acc[-3:].mean() - 2 * np.std(np.diff(acc)) / np.sqrt(2) / np.sqrt(3)
    assert f["value"] >= level - 1e-12 and f["ci95"][0] >= level - 1e-12
