"""Readable bilingual (Chinese | English) text report of an ``analyze`` result."""

from __future__ import annotations

import math

from zhbert import history_schema as H
from zhbert.analysis.downstream_report import format_downstream
from zhbert.analysis.lower import NOT_AVAILABLE


def _f(v, spec: str = ".4f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, spec)


def _p(p) -> str:
    return "n/a" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3g}")


def _lower(r: dict) -> bool:
    """Whether the analysed metric is lower-is-better (a result without ``metric``: accuracy)."""
    return (r.get("metric") or {}).get("higher_is_better") is False


def _g(v) -> str:
    """A lower-is-better metric's value: four significant digits."""
    return _f(v, ".4g")


def _head(title: str) -> list[str]:
    return ["", title, "-" * 60]


def _summary(r: dict) -> list[str]:
    m, inp, s = r["mlm_stats"], r["input"], r["series"]
    lines = _head("概要 | Summary")
    lines += [f"input: {inp['path']} (format {inp['format']}, dropped non-finite rows: "
              f"{inp['dropped_nonfinite']})",
              f"series: {s['kind']} ({s['n']} points), total steps {r['total_steps']:,}",
              f"  why this series: {s.get('reason', 'n/a')}"]
    if _lower(r):
        mb = r["metric"]
        st = mb["stats"]
        lines.append(f"{mb['name']} (lower is better): best {_g(mb['best'])} at step "
                     f"{mb['best_step']:,.0f}, final {_g(mb['final'])}; mean {_g(st['mean'])}  "
                     f"max {_g(st['max'])}  min {_g(st['min'])}  std {_g(st['std'])} (population)")
    else:
        name = (r.get("metric") or {}).get("name")
        what = "MLM accuracy" if name in (None, H.MLM_ACC, H.EVAL_MLM_ACC) else name
        lines.append(f"{what}: mean {_f(100 * m['mean'], '.2f')}%  max "
                     f"{_f(100 * m['max'], '.2f')}%  min {_f(100 * m['min'], '.2f')}%  std "
                     f"{_f(100 * m['std'], '.2f')}% (population)")
    b = r.get("baselines")
    if b:
        names = ", ".join(f"{k.replace('_', ' ')} {_f(100 * v, '.2f')}%" for k, v in b["acc"].items())
        beaten = b.get("beaten")
        lines.append(f"count-table baselines (held-out): {names}" + (
            "" if beaten is None else f"; the final held-out accuracy beats "
            f"{len(beaten)} of {len(b['acc'])}"))
    ls = r["loss_stats"]
    if ls:
        lines.append(f"loss: {_f(ls['initial'], '.2f')} -> {_f(ls['final'], '.2f')} "
                     f"(-{_f(ls['decrease_pct'], '.1f')}%)")
    return lines


def _correlation(r: dict) -> list[str]:
    p, t = r["pearson"], r["trend"]
    lo, hi = p["ci95"]
    lines = _head("相关性分析 | Correlation")
    lines += [f"Pearson r = {_f(p['r'], '.4f')}, R^2 = {_f(r['r_squared'], '.4f')}, p {_p(p['p_value'])}, "
              f"95% CI [{_f(lo, '.2f')}, {_f(hi, '.2f')}] (Fisher z; {_f(lo, '.3f')}..{_f(hi, '.3f')})",
              f"Spearman rho = {_f(r['spearman']['rho'], '.4f')} (p {_p(r['spearman']['p_value'])}), "
              f"Kendall tau = {_f(r['kendall']['tau'], '.4f')} (p {_p(r['kendall']['p_value'])})"]
    lo2, hi2 = t["pearson_ci95_neff"]
    lines.append(f"effective n = {_f(t['n_eff'], '.0f')} (from the {t.get('n_eff_source', 'residuals')})"
                 f" -> Pearson 95% CI [{_f(lo2, '.3f')}, {_f(hi2, '.3f')}], "
                 f"p {_p(t['pearson_p_value_neff'])}")
    return lines


def _trend(r: dict) -> list[str]:
    t = r["trend"]
    d = t["residuals"]
    lines = _head("趋势检验 | Trend tests")
    for key in ("mann_kendall", "modified_mann_kendall"):
        m = t[key]
        thin = f", thinned to {m['n_used']} points" if m["thinned"] else ""
        lines.append(f"{key} ({m['method']}): {m['trend']}, z = {_f(m['z'], '.2f')}, p {_p(m['p_value'])}, "
                     f"Sen slope {_f(m['sen_slope_per_1k'], '.4g')}/1K steps{thin}")
    lines.append(f"residuals of the straight line: Durbin-Watson {_f(d['durbin_watson'], '.2f')}, "
                 f"Ljung-Box p ({d['ljung_box_lags']} lags) {_p(d['ljung_box_p'])}, "
                 f"lag-1 autocorrelation {_f(d['lag1_autocorr'], '.2f')}")
    lines.append(t["statement"])
    return lines


def _fits(r: dict) -> list[str]:
    lines = _head("曲线拟合 | Curve fits")
    lines.append(f"{'family':<12}{'RMSE':>9}{'tail RMSE':>11}{'BIC':>11}{'asymptote':>11}  params")
    for name, f in r["curve_fits"].items():
        if not f["converged"]:
            lines.append(f"{name:<12} not converged")
            continue
        params = ", ".join(f"{k}={_f(v, '.4g')}" for k, v in f["params"].items() if k != "t_scale")
        flag = f"; AT BOUND: {', '.join(f['at_bound'])}" if f.get("at_bound") else ""
        lines.append(f"{name:<12}{_f(f['rmse']):>9}{_f(f['tail_rmse']):>11}{_f(f['bic'], '.1f'):>11}"
                     f"{_f(f['asymptote']):>11}  {params} (t in {f['params']['t_scale']:g} steps"
                     f"{flag})")
    b = r["best_fit"]
    lines.append(f"best fit: {b['family'] if b else 'none'}" + (f" — {b['criterion']}" if b else ""))
    lf = r.get("loss_fit")
    if lf and lf["converged"]:
        pr = lf["params"]
        lines.append(f"loss ~ E + A t^-alpha: E={_f(pr['E'], '.3f')}, A={_f(pr['A'], '.3f')}, "
                     f"alpha={_f(pr['alpha'], '.3f')}, RMSE {_f(lf['rmse'], '.4f')}")
    return lines


def _pct(v, spec: str = ".2f") -> str:
    """A fraction in percent ("n/a" for None)."""
    return _f(100 * v if v is not None else None, spec)


def _recalibration(x: dict, fmt) -> list[str]:
    """How the interval was recalibrated on other runs' backtests (nothing when it was not)."""
    c = x.get("recalibration") or {}
    if not c.get("applied"):
        return []
    lo, hi = c["raw"]
    where = f"class {c['class']}, {c['n']} backtests of other runs: zhbert.analysis.recalibrate"
    if [lo, hi] == [c["lower"], c["upper"]]:
        return [f"  interval unchanged by the recalibration ({where})"]
    return [f"  interval recalibrated ({where}); the forecaster's own: {fmt(lo)} .. {fmt(hi)}"]


def _lower_extrapolation(r: dict) -> list[str]:
    """The forecast section of a lower-is-better metric (the loss forecaster's result)."""
    x = r["extrapolation"]
    lines = _head("预测 | Forecast")
    if not x or not x["ok"]:
        why = x["reason"] if x else "no data"
        return [*lines, f"forecast: {why}" if why == NOT_AVAILABLE else f"no forecast: {why}"]
    lo, hi = x["ci95"]
    axis = "lr area" if x["time_axis"] == "lr_area" else "steps"
    on = " on the log of the perplexity (a loss)" if x.get("transform") == "log" else ""
    lines.append(f"at step {x['target_step']:,.0f} ({x['target_source']}): {_g(x['value'])} "
                 f"(95% interval {_g(lo)} .. {_g(hi)}, for the {x['interval_for']}); family "
                 f"{x.get('family') or 'n/a'}{on}, in {axis}; {x['n_points']} points")
    lines += _recalibration(x, _g)
    for g in r["marginal_gain"]:
        lines.append(f"  change per 1K steps at step {g['step']:,.0f}: {g['gain_per_1k']:+.4g}")
    return lines


def _extrapolation(r: dict) -> list[str]:
    if _lower(r):
        return _lower_extrapolation(r)
    x = r["extrapolation"]
    lines = _head("预测 | Forecast")
    if not x or not x["ok"]:
        return [*lines, f"no forecast: {x['reason'] if x else 'no data'}"]
    lo, hi = x["ci95"]
    axis = "lr area S1 (and steps)" if x["time_axis"] == "lr_area" else "steps"
    lines.append(f"at step {x['target_step']:,.0f} ({x['target_source']}): {_pct(x['value'])}% "
                 f"(95% interval {_pct(lo)}% .. {_pct(hi)}%, for the {x['interval_for']})")
    lines += _recalibration(x, lambda v: f"{_pct(v)}%")
    if x.get("note"):
        lines.append(f"  note: {x['note']}")
    lines.append(f"  fitted in {axis}; {x['weights_method']}; {x['n_refits']} refits from "
                 f"{x['n_boot']} resamples, block {x['block_length']}")
    for name, f in x["families"].items():
        state = f"excluded: {f['excluded']}" if f["excluded"] else f"weight {_f(f['weight'], '.2f')}"
        lines.append(f"  {name:<18} {_pct(f['value']):>7}%  {state}")
    for g in r["marginal_gain"]:
        lines.append(f"  marginal gain at step {g['step']:,.0f}: "
                     f"{100 * g['gain_per_1k']:+.3f} points per 1K steps")
    return lines


def _backtest(r: dict) -> list[str]:
    """The backtest section: accuracies in percent and errors in points, or the values of a
    lower-is-better metric as they are."""
    b = r.get("backtest")
    if not b:
        return []
    lower = _lower(r)
    val, unit, (iw, ew) = (_g, "", (22, 10)) if lower else (_pct, "%", (20, 8))

    def err(e: float) -> str:
        return f"{e:>+10.4f}" if lower else f"{100 * e:>+8.2f}"

    a = b["actual"]
    lines = _head("回测 | Backtest")
    lines.append(f"actual at step {b['target_step']:,.0f}: {val(a['value'])}{unit} +- "
                 f"{val(a['stderr'])} ({a['how']})")
    lines.append(f"{'cut':>5}{'points':>8}{'forecast':>10}{'95% interval':>{iw}}{'error':>{ew}}"
                 "  covered")
    for row in b["rows"]:
        if row["covered"] is None:
            lines.append(f"{row['cut']:>5.0%}{row['n_points']:>8}  not forecast: {row['reason']}")
            continue
        lo, hi = row["ci95"]
        lines.append(f"{row['cut']:>5.0%}{row['n_points']:>8}{val(row['forecast']):>10}"
                     f"{'[' + val(lo) + ', ' + val(hi) + ']':>{iw}}{err(row['error'])}  "
                     f"{'yes' if row['covered'] else 'no'}")
    lines.append(f"mean absolute error {val(b['mean_abs_error'])}{'' if lower else ' points'}, "
                 f"coverage {_f(b['coverage'], '.0%')} of {b['n_forecast']} forecasts")
    return lines


def _phases(r: dict) -> list[str]:
    ph = r["phases"]
    lines = _head("阶段分析 | Phases")
    for i, q in enumerate(ph["quarters"], 1):
        if _lower(r):
            lines.append(f"Q{i} {q['start_step']:>9,.0f}-{q['end_step']:<9,.0f} mean "
                         f"{_g(q['mean_acc'])}  change {_f(q['gain'], '+.4g')} "
                         f"({_f(q['gain_per_1k'], '+.4g')}/1K)")
            continue
        lines.append(f"Q{i} {q['start_step']:>9,.0f}-{q['end_step']:<9,.0f} mean "
                     f"{_pct(q['mean_acc'])}%  gain {_pct(q['gain'], '+.2f')} points "
                     f"({_pct(q['gain_per_1k'], '+.3f')}/1K)")
    cps = ", ".join(f"{c['step']:,.0f}" for c in ph["change_points"]) or "none"
    lines.append(f"change points: {cps}")
    for ev in ph["lr_events"]:
        lines.append(f"lr event {ev['event']} at step {ev['step']:,.0f} (nearest change point: "
                     f"{_f(ev['nearest_change_point_step'], ',.0f')})")
    n = r["noise"]
    lines.append(f"noise sd (first differences / sqrt 2): {_f(n['sd_first_diff_over_sqrt2'], '.4f')} "
                 f"— {n['note']}")
    return lines


def _comparison(r: dict) -> list[str]:
    c = r.get("comparison")
    if not c:
        return []
    lines = _head("运行对比 | Comparison")
    for s in c["runs"]:
        if _lower(r):
            lines.append(f"{s['label']:<16} n={s['n']:<6} last step {s['last_step']:>9,.0f}  final "
                         f"{_g(s['final_acc'])}  best {_g(s['best'])}  r={_f(s['pearson_r'], '.4f')}"
                         f"  best fit {s['best_fit']}  asymptote {_f(s['asymptote'])}")
            continue
        lines.append(f"{s['label']:<16} n={s['n']:<6} last step {s['last_step']:>9,.0f}  final "
                     f"{_f(100 * s['final_acc'], '.2f')}%  max {_f(100 * s['max_acc'], '.2f')}%  "
                     f"r={_f(s['pearson_r'], '.4f')}  best {s['best_fit']}  asymptote {_f(s['asymptote'])}")
    for m in c["matched"]:
        if m["overlap"] is None:
            lines.append(f"{m['b']} vs {m['a']}: no overlapping steps")
            continue
        if _lower(r):
            lines.append(f"{m['b']} - {m['a']} over steps {m['overlap'][0]:,.0f}-"
                         f"{m['overlap'][1]:,.0f}: mean {m['mean_diff']:+.4g}, at the end "
                         f"{m['final_diff']:+.4g}")
            continue
        lines.append(f"{m['b']} - {m['a']} over steps {m['overlap'][0]:,.0f}-{m['overlap'][1]:,.0f}:"
                     f" mean {100 * m['mean_diff']:+.2f} points, at the end "
                     f"{100 * m['final_diff']:+.2f} points")
    return lines


def format_report(result: dict) -> str:
    """The whole report as text (section headings in Chinese and English)."""
    lines = ["中文BERT训练步数-准确率分析 | Chinese BERT steps-accuracy analysis"]
    if _lower(result):
        lines = [f"训练步数-损失分析 | steps-{result['metric']['name']} analysis (lower is better)"]
    for part in (_summary, _correlation, _trend, _fits, _extrapolation, _backtest, _phases,
                 _comparison):
        lines += part(result)
    tail = format_downstream(result["downstream"]) if result.get("downstream") else ""
    return "\n".join(lines) + "\n" + tail
