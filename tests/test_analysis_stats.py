"""Unit tests of the statistics in zhbert.analysis on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from zhbert.analysis import evaluate_family
from zhbert.analysis.bootstrap import block_length, circular_block_indices
from zhbert.analysis.compare import matched
from zhbert.analysis.correlation import fisher_ci, loss_stats, pearson
from zhbert.analysis.curves import choose_best, fit_all, fit_family
from zhbert.analysis.forecast import forecast_final
from zhbert.analysis.history import Series
from zhbert.analysis.phases import change_points, lr_events, quarters
from zhbert.analysis.synthetic import ar1, warmup_cosine
from zhbert.analysis.trend import effective_n, mann_kendall, residual_diagnostics

STEPS = np.linspace(100, 100_000, 400)


def test_fisher_ci_matches_formula_and_published_interval():
    lo, hi = fisher_ci(0.7869, 1000)
    z, se = math.atanh(0.7869), 1 / math.sqrt(997)
    assert lo == pytest.approx(math.tanh(z - 1.959964 * se), abs=1e-6)
    assert (round(lo, 2), round(hi, 2)) == (0.76, 0.81)
    assert lo == pytest.approx(0.762, abs=1e-3) and hi == pytest.approx(0.809, abs=1e-3)


def test_pearson_and_loss_stats_match_scipy():
    rng = np.random.default_rng(0)
    y = 0.3 + 1e-6 * STEPS + rng.normal(0, 0.02, STEPS.size)
    p = pearson(STEPS, y)
    ref = stats.pearsonr(STEPS, y)
    assert p["r"] == pytest.approx(ref.statistic) and p["p_value"] == pytest.approx(ref.pvalue)
    ls = loss_stats(np.array([8.0, 5.0, 2.0]))
    assert ls["decrease"] == 6.0 and ls["decrease_pct"] == pytest.approx(75.0)


def test_mann_kendall_detects_trend_and_thins_long_series():
    rng = np.random.default_rng(1)
    up = mann_kendall(STEPS, 1e-6 * STEPS + rng.normal(0, 0.01, STEPS.size))
    assert up["mann_kendall"]["trend"] == "increasing"
    assert up["modified_mann_kendall"]["p_value"] < 0.01
    flat = mann_kendall(STEPS, rng.normal(0, 0.01, STEPS.size))
    assert flat["mann_kendall"]["p_value"] > 0.01
    long = mann_kendall(np.arange(5000.0), rng.normal(size=5000), max_points=500)
    assert long["mann_kendall"]["thinned"] and long["mann_kendall"]["n_used"] == 500


def test_durbin_watson_white_noise_vs_ar1():
    rng = np.random.default_rng(2)
    white = residual_diagnostics(STEPS, rng.normal(0, 1, STEPS.size))
    red = residual_diagnostics(STEPS, ar1(STEPS.size, 0.9, 1.0, rng))
    assert 1.7 < white["durbin_watson"] < 2.3 and white["ljung_box_p"] > 0.01
    assert red["durbin_watson"] < 0.5 and red["lag1_autocorr"] > 0.7 and red["ljung_box_p"] < 1e-6
    assert effective_n(1000, 0.9) == pytest.approx(1000 * 0.1 / 1.9)
    assert effective_n(1000, -0.3) == 1000


@pytest.mark.parametrize(("family", "truth"), [
    ("power_law", {"a": 0.68, "b": 0.5, "c": 0.45}),
    ("weibull", {"a": 0.66, "d": 0.1, "lam": 20.0, "k": 1.3}),
])
def test_known_curve_is_recovered(family, truth):
    params = {**truth, "t_scale": 1000.0}
    rng = np.random.default_rng(3)
    y = evaluate_family(family, params, STEPS) + rng.normal(0, 0.003, STEPS.size)
    fit = fit_family(family, STEPS, y)
    assert fit["converged"]
    for k, v in truth.items():
        assert fit["params"][k] == pytest.approx(v, rel=0.1), k
    assert fit["asymptote"] == pytest.approx(truth["a"], abs=0.01)
    assert fit["rmse"] == pytest.approx(0.003, rel=0.2)


def test_fit_all_reports_every_family_and_best_is_saturating_on_saturating_data():
    y = evaluate_family("power_law", {"a": 0.7, "b": 0.5, "c": 0.5, "t_scale": 1000.0}, STEPS)
    y = y + np.random.default_rng(4).normal(0, 0.005, STEPS.size)
    fits = fit_all(STEPS, y)
    assert set(fits) == {"linear", "log_linear", "power_law", "weibull"}
    assert fits["linear"]["asymptote"] is None
    assert all(f["converged"] and f["tail_rmse"] is not None for f in fits.values())
    best = choose_best(fits)
    assert best["family"] in ("power_law", "weibull")


def test_failed_fit_is_marked_not_converged():
    fit = fit_family("weibull", np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]))
    assert fit["converged"] is False and fit["params"] is None


def test_loss_power_law_recovered():
    loss = 2.8 + 4.0 * (STEPS / 1000) ** -0.5
    fit = fit_family("loss_power_law", STEPS, loss)
    assert fit["params"]["E"] == pytest.approx(2.8, rel=1e-3)
    assert fit["params"]["alpha"] == pytest.approx(0.5, rel=1e-3)


def test_ar1_noise_gives_wider_extrapolation_interval_than_iid():
    steps = np.linspace(100, 100_000, 300)
    curve = evaluate_family("power_law", {"a": 0.68, "b": 0.5, "c": 0.45, "t_scale": 1e3}, steps)
    rng = np.random.default_rng(5)
    widths, blocks = [], []
    for noise in (rng.normal(0, 0.01, steps.size), ar1(steps.size, 0.9, 0.01, rng)):
        y = curve + noise
        x = forecast_final(steps, y, None, n_boot=80, seed=0, band_steps=steps[::10],
                           families=("power_law",))
        widths.append(x["ci95"][1] - x["ci95"][0])
        blocks.append(x["block_length"])
        assert x["ci95"][0] <= x["value"] <= x["ci95"][1]
        assert len(x["band"]["steps"]) == len(x["band"]["low"]) == len(x["band"]["value"])
    assert widths[1] > 1.5 * widths[0]
    assert blocks[0] <= 3 < blocks[1]


def test_block_bootstrap_indices_are_circular_blocks():
    idx = circular_block_indices(10, 3, 5, np.random.default_rng(0))
    assert idx.shape == (5, 10)
    assert np.all((np.diff(idx[:, :3], axis=1) % 10) == 1)
    assert block_length(np.random.default_rng(0).normal(size=1000)) <= 2


def test_change_point_found_near_known_break():
    rng = np.random.default_rng(6)
    t = np.arange(1, 501) * 10.0
    y = np.where(t < 2500, t * 2e-4, 0.5 + (t - 2500) * 2e-5) + rng.normal(0, 0.02, t.size)
    pts = change_points(t, y)["points"]
    assert len(pts) >= 1
    near = min(pts, key=lambda p: abs(p["step"] - 2500))
    assert abs(near["step"] - 2500) < 250
    assert near["slope_before_per_1k"] > near["slope_after_per_1k"]


def test_quarters_and_lr_events():
    t = np.arange(1, 1001) * 100.0
    q = quarters(t, 1e-5 * t)
    assert len(q) == 4 and q[0]["start_step"] == 100 and q[-1]["end_step"] == 100_000
    assert sum(x["n"] for x in q) == 1000
    assert q[1]["gain_per_1k"] == pytest.approx(0.01)
    ev = lr_events(t, warmup_cosine(t, warmup_frac=0.1))
    assert ev[0]["event"] == "lr_peak_end_of_warmup" and ev[0]["step"] == pytest.approx(10_000, abs=100)
    assert ev[1]["event"] == "lr_near_zero" and 90_000 < ev[1]["step"] <= 100_000


def test_comparison_at_matched_steps():
    a = Series("train", np.arange(1, 1001) * 100.0, np.linspace(0.1, 0.6, 1000))
    b = Series("train", np.arange(1, 501) * 100.0, np.linspace(0.1, 0.6, 1000)[:500] + 0.05)
    m = matched("100k", a, "50k", b)
    assert m["overlap"] == [100.0, 50_000.0]
    assert m["mean_diff"] == pytest.approx(0.05) and m["final_diff"] == pytest.approx(0.05)
    assert len(m["steps"]) == 11 and m["n_common"] == 500


def test_ljung_box_matches_statsmodels():
    from statsmodels.stats.diagnostic import acorr_ljungbox

    from zhbert.analysis.trend import ljung_box_p

    x = np.random.default_rng(3).normal(size=300).cumsum() * 0.05 + np.random.default_rng(4).normal(size=300)
    assert ljung_box_p(x, 10) == pytest.approx(float(acorr_ljungbox(x, lags=[10])["lb_pvalue"].iloc[0]))


def test_a_new_curve_family_without_start_values_fails_loudly():
    """Issue 14 item 15: an unknown family must not silently get the Weibull start values."""
    import numpy as np
    import pytest

    from zhbert.analysis.curves import Family, fit_params

    fam = Family("cubic", lambda t, a, b: a + b * t**3, ("a", "b"))
    t = np.linspace(1, 10, 20)
    with pytest.raises(NotImplementedError, match="cubic"):
        fit_params(fam, t, 0.1 + 0.001 * t**3)
    assert fit_params(fam, t, 0.1 + 0.001 * t**3, p0=[0.0, 0.0],
                      bounds=([-1, -1], [1, 1])) is not None


def _exp_saturation_family():
    """A throwaway family ``a - b exp(-r ts)``: curve, start values, bounds and refit parts."""
    from zhbert.analysis.curves import Family
    from zhbert.analysis.refit import Refit, intercept_ok, log_grid

    def start(ts, y):
        return [y.max(), y.max() - y.min(), 3.0 / ts.max()], ([-np.inf, 0, 1e-6], [1, np.inf, 1e3])

    def basis(x, grid):
        e = np.exp(-grid[0][:, None] * x[None, :])
        return np.stack([np.ones_like(e), e], axis=1)

    return Family("exp_saturation", lambda ts, a, b, r: a - b * np.exp(-r * ts), ("a", "b", "r"),
                  "a", start=start, accuracy=True, forecast=True, refit=Refit(
                      grid=lambda popt, lo, hi: [log_grid(popt[2], lo[2], hi[2], 21)],
                      basis=basis, valid=lambda c, lo, hi: intercept_ok(c, lo, hi) & (c[:, 1] <= 0)))


def test_a_new_curve_family_is_one_registry_entry(monkeypatch):
    """Issue 25 item 17: one FAMILIES entry is fitted, scored, forecast in both time units and
    refitted on every bootstrap resample, with no other edit."""
    from zhbert.analysis import curves
    from zhbert.analysis.forecast import forecast_families

    monkeypatch.setitem(curves.FAMILIES, "exp_saturation", _exp_saturation_family())
    steps = np.arange(10, 1001, 10, dtype=float)
    acc = 0.6 - 0.5 * np.exp(-3 * steps / 1000) + np.random.default_rng(0).normal(0, 0.002, 100)
    fit = fit_all(steps, acc)["exp_saturation"]
    assert fit["converged"] and fit["asymptote"] == pytest.approx(0.6, abs=0.01)
    assert choose_best({"exp_saturation": fit})["family"] == "exp_saturation"
    assert {"exp_saturation", "exp_saturation_steps"} <= set(forecast_families())
    only = forecast_final(steps, acc, None, n_boot=30, families=("exp_saturation",))
    assert only["ok"] and only["families"]["exp_saturation"]["weight"] == 1.0
    assert only["n_refits"] == 30 and only["value"] == pytest.approx(0.6 - 0.5 * math.exp(-6),
                                                                     abs=0.01)
    assert only["ci95"][0] <= only["value"] <= only["ci95"][1]
    assert forecast_final(steps, acc, None, n_boot=10)["families"]["exp_saturation"]["weight"] > 0
