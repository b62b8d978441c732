"""The loss forecast: its laws, its schedule from an lr column, recovery of known curves, and its
refusals (``zhbert.analysis.loss_forecast``, ``loss_laws``, ``loss_fit``, ``loss_prior``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.test_imports import loaded_after
from zhbert.analysis.loss_fit import Basis, grid_solve
from zhbert.analysis.loss_forecast import forecast_loss
from zhbert.analysis.loss_laws import (
    GRID_CELLS,
    LAWS,
    TabulatedSchedule,
    loss_design,
    multi_power,
)
from zhbert.analysis.loss_prior import calibrate_prior, default_prior
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.synthetic import make_loss_curve

COSINE = Schedule(1e-3, 200, 10_000, "cosine")


def _wsd(total=10_000, warmup=200, decay_from=0.8) -> TabulatedSchedule:
    steps = np.linspace(0, total, 201)
    return TabulatedSchedule(steps, np.interp(steps, [0, warmup, decay_from * total, total],
                                              [0.0, 1e-3, 1e-3, 1e-4]))


class _StepDrop:
    """lr/peak 1 up to step 96, 0.5 after: exact areas, for a hand-checked multi-power law."""

    def areas(self, steps):
        s = np.asarray(steps, np.float64)
        s1 = np.minimum(s, 96.0) + 0.5 * np.maximum(s - 96.0, 0.0)
        return s1, 0.5 * np.maximum(s - 96.0, 0.0)


def test_tabulated_schedule_reproduces_the_planned_areas():
    steps = np.arange(0, 10_001, 50)
    tab = TabulatedSchedule(steps, COSINE.lr(np.maximum(steps, 1)))
    s1, s2 = tab.areas([1000, 5000, 10_000])
    t1, t2 = COSINE.areas([1000, 5000, 10_000])
    assert s1 == pytest.approx(t1, rel=2e-3) and s2 == pytest.approx(t2, rel=5e-3, abs=1.0)
    assert tab.end == 10_000 and tab.to_dict()["peak_lr"] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="increasing"):
        TabulatedSchedule([1, 1], [1e-3, 1e-3])


def test_multi_power_law_of_one_lr_drop_by_hand():
    """S1(192) = 96 + 48 = 144 peak-lr steps, one drop of 0.5 to eta 0.5 at step 96, area 48
    after it; with C = 10, gamma = 1, beta = 1: G = 1 - 1 / (10 * 0.048 / 0.5 + 1)."""
    d = loss_design([192.0], _StepDrop(), horizon=192.0)
    assert GRID_CELLS == 192 and d.delta.tolist() == pytest.approx([0.5])
    assert d.eta.tolist() == pytest.approx([0.5]) and d.area[0].tolist() == pytest.approx([0.048])
    p = [2.0, 0.5, 0.4, 0.2, 10.0, 1.0, 1.0]
    g = 1 - 1 / (10 * 0.048 / 0.5 + 1)
    want = 2.0 + 0.5 * 0.144 ** -0.4 - 0.2 * 0.5 * g
    assert multi_power(p, d)[0] == pytest.approx(want, rel=1e-12)
    assert LAWS["multi_power"].func(p, loss_design([50.0], _StepDrop(), 192.0))[0] == \
        pytest.approx(2.0 + 0.5 * 0.05 ** -0.4)  # before the drop: no annealing term


@pytest.mark.parametrize(("schedule", "cut"), [(COSINE, 5000), (_wsd(), 9000)],
                         ids=["cosine", "wsd"])
def test_a_curve_of_the_s1s2_law_is_recovered(schedule, cut):
    """A noisy curve of Tissue's law, cut at 50 % (the WSD curve at 90 %, in its decay: before it
    the annealing term is not identified): the S1/S2 fit's interval covers the true final loss,
    its point error is under 1 % and its exponent is the true one."""
    c = make_loss_curve(schedule, n=200, noise=0.005, rho=0.3, seed=0,
                        shape={"L0": 2.5, "A": 1.0, "alpha": 0.5, "C": 0.02})
    steps, loss = np.array(c["steps"]), np.array(c["loss"])
    truth, m = c["truth"]["final_loss"], steps <= cut
    f = forecast_loss(steps[m], loss[m], schedule, 10_000, noise_sd=0.0, family="tissue_s1s2",
                      n_boot=100)
    assert f["ok"], f["reason"]
    assert f["lower"] <= truth <= f["upper"] and f["lower"] <= f["value"] <= f["upper"]
    assert abs(f["value"] - truth) / truth < 0.01
    assert f["params"]["alpha"] == pytest.approx(0.5, abs=0.1)
    exact = forecast_loss(steps[m], np.array(c["truth_curve"])[m], schedule, 10_000,
                          noise_sd=0.0, family="tissue_s1s2", n_boot=20)
    assert exact["value"] == pytest.approx(truth, rel=1e-3)  # noise-free: the law itself


def test_ours_recovers_a_multi_power_curve_under_its_prior_and_narrows_with_data():
    prior = default_prior()
    steps = np.linspace(100, 10_000, 100)
    sched = _wsd()
    truth_p = [2.5, 1.0, math.exp(prior["log_alpha"][0]), prior["B"][0], *prior["shape"]]
    d = loss_design(steps, sched)
    loss = multi_power(truth_p, d) + np.random.default_rng(0).normal(0, 0.003, steps.size)
    truth = multi_power(truth_p, loss_design([10_000.0], sched, 10_000.0))[0]
    widths = []
    for cut in (0.3, 0.7):
        m = steps <= cut * 10_000
        f = forecast_loss(steps[m], loss[m], sched, 10_000, n_boot=100, prior=prior)
        assert f["ok"] and f["family"] == "multi_power+prior"
        assert f["lower"] <= truth <= f["upper"]
        widths.append(f["upper"] - f["lower"])
    assert widths[1] < widths[0]


def test_three_points_with_a_schedule_give_an_honestly_wide_interval():
    c = make_loss_curve(COSINE, n=100, noise=0.01, seed=1)
    steps, loss = np.array(c["steps"]), np.array(c["loss"])
    few = forecast_loss(steps[:3], loss[:3], COSINE, 10_000, n_boot=100)
    many = forecast_loss(steps[:30], loss[:30], COSINE, 10_000, n_boot=100)
    truth = c["truth"]["final_loss"]
    assert few["ok"] and many["ok"] and few["n_points"] == 3
    assert few["lower"] <= truth <= few["upper"] and many["lower"] <= truth <= many["upper"]
    assert few["upper"] - few["lower"] > 1.5 * (many["upper"] - many["lower"])


def test_refusals_name_what_the_user_can_do():
    steps, loss = np.array([100.0, 200.0]), np.array([5.0, 4.0])
    f = forecast_loss(steps, loss, COSINE, 10_000)
    assert not f["ok"] and "only 2 points" in f["reason"] and f["value"] is None
    f = forecast_loss(np.arange(1, 5) * 100.0, 5 - np.arange(4) * 0.1, None, 10_000)
    assert "at least 5" in f["reason"] and "lr schedule" in f["reason"]
    f = forecast_loss(np.arange(1, 21) * 100.0, 3 + np.arange(20) * 0.1, COSINE, 10_000)
    assert "does not decrease" in f["reason"]
    f = forecast_loss(np.arange(1, 21) * 100.0, 5 - np.arange(20) * 0.1, None, 10_000,
                      family="tissue_s1s2")
    assert not f["ok"] and "needs the lr schedule" in f["reason"]
    with pytest.raises(ValueError, match="unknown family"):
        forecast_loss(steps, loss, COSINE, 10_000, family="magic")


def test_every_family_returns_the_documented_keys_and_a_band():
    c = make_loss_curve(COSINE, n=100, noise=0.01, seed=2)
    steps, loss = np.array(c["steps"]), np.array(c["loss"])
    for family in ("auto", "tissue_s1s2", "multi_power", "power_law_steps", "last_value"):
        f = forecast_loss(steps[:50], loss[:50], COSINE, 10_000, n_boot=30, family=family,
                          band_steps=[6000, 8000])
        assert f["ok"], (family, f["reason"])
        assert {"value", "lower", "upper", "family", "target_step", "n_points", "noise_sd",
                "params", "schedule", "interval_for"} <= set(f)
        assert f["lower"] <= f["value"] <= f["upper"] and f["target_step"] == 10_000
        assert len(f["band"]["low"]) == 2 and f["band"]["low"][0] <= f["band"]["high"][0]


def test_the_prior_is_fitted_on_other_curves_only():
    curves = []
    for i, shape in enumerate([{"L0": 2.5, "A": 1.0, "alpha": 0.4, "C": 0.02},
                               {"L0": 3.0, "A": 1.0, "alpha": 0.6, "C": 0.02}]):
        c = make_loss_curve(COSINE, n=80, noise=0.002, seed=i, shape=shape)
        curves.append((f"c{i}", np.array(c["steps"]), np.array(c["loss"]), COSINE))
    both, without = calibrate_prior(curves), calibrate_prior(curves, exclude="c1")
    assert both["curves"] == ["c0", "c1"] and without["curves"] == ["c0"]
    assert without["log_alpha"][0] < both["log_alpha"][0]  # c1's larger exponent left out
    assert {"shape", "log_alpha", "B", "model_error"} <= set(default_prior())


def test_grid_solve_respects_a_prior_on_an_unseen_coefficient():
    """A column that is 0 on the data is set by its prior alone."""
    t = np.linspace(1, 10, 30)
    basis = Basis("power_law_steps", loss_design(t * 1000, None))
    basis.extra = np.zeros(30)
    out = grid_solve(basis, (2 + 3 * t ** -0.5)[None], 1.0, mu=np.array([[0.0, 0.0, 0.7]]),
                     prec=np.array([0.0, 0.0, 100.0]))
    assert out["theta"][0].tolist() == pytest.approx([2.0, 3.0, 0.7], abs=1e-3)
    assert out["alpha"][0] == pytest.approx(0.5, abs=1e-3)


def test_the_loss_forecast_does_not_load_torch():
    assert loaded_after("import zhbert.analysis.loss_forecast", ("torch",)) == []
