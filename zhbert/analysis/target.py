"""Time to a target accuracy: the step (and wall time) at which a run reached, or by its forecast
will reach, a given accuracy — or that it will not within its planned schedule.

* **reached**: the first measured point at or above the target; the interval is where the
  forecast's 95% band of the expected accuracy crosses the target (its upper edge first, its
  lower edge last);
* **forecast**: not measured yet, but the forecast curve (``zhbert.analysis.forecast``, fitted to
  the points so far, schedule-aware) crosses the target before the planned last step;
* **not reached within the planned schedule**: a finished run that never measured it, or a forecast
  that stays below it up to the planned last step.

A lower-is-better metric (loss, perplexity) reaches a target by falling to it: reached is read off
the observed points as above; before that, the loss forecaster's value at the planned last step
(:mod:`zhbert.analysis.lower`) says whether it is **forecast to be reached by the planned last
step** (the step of the crossing itself is not forecast) or not.

Wall times come from the history's ``elapsed_s`` column: interpolated inside the run, and past
its last point at the pace of the last fifth of the run.
"""

from __future__ import annotations

import math

import numpy as np

from zhbert import history_schema as H
from zhbert.analysis.forecast import DEFAULT_N_BOOT, forecast_final
from zhbert.analysis.history import History, Series, select_series
from zhbert.analysis.lower import forecast_lower
from zhbert.analysis.schedule import budget_warp, history_schedule
from zhbert.baselines import unigram_floor
from zhbert.errors import UserError

GRID_POINTS = 400
PACE_FRACTION = 0.2
STATUS_TEXT = {"reached": "reached", "forecast": "forecast to be reached",
               "not_reached": "not reached within the planned schedule",
               "unknown": "not reached yet, and no forecast yet",
               "forecast_by_end": "forecast to be reached by the planned last step (the step "
                                  "of the crossing is not forecast for a lower-is-better metric)"}


def planned_last_step(history: History) -> int:
    """The run's planned last step (a time budget's last plan, else ``meta.config.run.max_steps``),
    else its last logged step."""
    meta = history.meta if isinstance(history.meta, dict) else {}
    warp = budget_warp(meta.get(H.META_TIME_BUDGET))
    if warp is not None:
        return int(warp[-1][0])
    config = meta.get(H.META_CONFIG)
    try:
        return int(config["run"]["max_steps"])
    except (TypeError, KeyError, ValueError):
        return int(history.train[H.STEPS].iloc[-1])


def first_crossing(steps: np.ndarray, values: np.ndarray, target: float) -> float | None:
    """First step where ``values`` reach ``target`` (linear interpolation between grid points)."""
    above = np.flatnonzero(np.asarray(values) >= target)
    if not above.size:
        return None
    i = int(above[0])
    if i == 0:
        return float(steps[0])
    x0, x1, y0, y1 = steps[i - 1], steps[i], values[i - 1], values[i]
    return float(x0 + (x1 - x0) * (target - y0) / (y1 - y0))


def wall_time_at(history: History, step: float | None) -> float | None:
    """Wall seconds of training at ``step`` from ``elapsed_s`` (None when not recorded)."""
    frame = history.train
    if step is None or H.ELAPSED_S not in frame.columns:
        return None
    steps = frame[H.STEPS].to_numpy(dtype=np.float64)
    elapsed = frame[H.ELAPSED_S].to_numpy(dtype=np.float64)
    ok = np.isfinite(elapsed)
    steps, elapsed = steps[ok], elapsed[ok]
    if len(steps) < 2:
        return None
    if step <= steps[-1]:
        return float(np.interp(step, steps, elapsed))
    k = min(int(len(steps) * (1 - PACE_FRACTION)), len(steps) - 2)
    pace = (elapsed[-1] - elapsed[k]) / (steps[-1] - steps[k])
    return float(elapsed[-1] + pace * (step - steps[-1]))


def time_to_target(history: History, target: float, series: str = "auto",
                   n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict:
    """The ``time_to_target`` block of the analysis JSON (see the module docstring)."""
    s = select_series(history, series)
    if not s.higher_is_better:
        return _lower_target(history, s, target, n_boot, seed)
    if not 0.0 < target < 1.0:
        raise UserError(f"--target-acc must be an accuracy fraction in (0, 1) (got {target:g})")
    planned = planned_last_step(history)
    last = float(s.steps[-1])
    seen = np.flatnonzero(s.acc >= target)
    observed = float(s.steps[seen[0]]) if seen.size else None
    start = float(s.steps[s.steps > 0][0]) if observed is not None else last
    grid = np.unique(np.linspace(start, max(planned, last), GRID_POINTS))
    fc = forecast_final(s.steps, s.acc, history_schedule(history), target_step=max(planned, last),
                        floor=unigram_floor(history.meta),
                        n_boot=n_boot, seed=seed, band_steps=grid)
    band = fc.get("band") or {}
    cross = {k: first_crossing(grid, np.asarray(band[k]), target) if band else None
             for k in ("value", "low", "high")}
    if observed is not None:
        status, step = "reached", observed
    elif last < planned and not fc["ok"]:  # e.g. still on the unigram plateau: cannot tell
        status, step = "unknown", None
    elif last >= planned or cross["value"] is None:
        status, step = "not_reached", None
    else:
        status, step = "forecast", cross["value"]
    interval = ([cross["high"], cross["low"]] if status in ("reached", "forecast")
                else [None, None])
    possible = cross["high"] if status == "not_reached" and last < planned else None
    return {
        "target_acc": target, "target": target, "metric": s.metric, "higher_is_better": True,
        "series": s.kind, "status": status, "text": STATUS_TEXT[status],
        "step": step, "step_ci95": interval, "last_step": last, "planned_last_step": planned,
        "elapsed_s": wall_time_at(history, step),
        "elapsed_s_ci95": [wall_time_at(history, v) for v in interval],
        "earliest_possible_step": possible,
        "forecast_at_planned": {"step": fc["target_step"], "value": fc["value"],
                                "ci95": fc["ci95"], "ok": fc["ok"], "reason": fc["reason"]},
        "interval": "steps where the forecast's 95% band of the expected accuracy crosses the "
                    "target (upper edge first, lower edge last); null: not within the plan",
    }


def _lower_target(history: History, s: Series, target: float, n_boot: int, seed: int) -> dict:
    """:func:`time_to_target` of a lower-is-better series (see the module docstring)."""
    schedule = history_schedule(history)
    planned = (schedule.end if schedule is not None and schedule.end is not None
               else planned_last_step(history))
    last = float(s.steps[-1])
    seen = np.flatnonzero(s.acc <= target)
    step = float(s.steps[seen[0]]) if seen.size else None
    fc = {"target_step": float(max(planned, last)), "value": None, "ci95": [None, None],
          "ok": False, "reason": None}
    if step is not None:
        status, fc["reason"] = "reached", "not needed: the target was reached"
    elif last >= planned:
        status, fc["reason"] = "not_reached", "not needed: the run has ended"
    else:
        fc = forecast_lower(s.steps, s.acc, schedule, float(planned), n_boot=n_boot, seed=seed,
                            metric=s.metric)
        status = ("unknown" if not fc["ok"] else
                  "forecast_by_end" if fc["value"] <= target else "not_reached")
    return {
        "target": target, "metric": s.metric, "higher_is_better": False, "series": s.kind,
        "status": status, "text": STATUS_TEXT[status], "step": step, "step_ci95": [None, None],
        "last_step": last, "planned_last_step": int(planned),
        "elapsed_s": wall_time_at(history, step), "elapsed_s_ci95": [None, None],
        "earliest_possible_step": None,
        "forecast_at_planned": {k: fc[k] for k in ("value", "ci95", "ok", "reason")}
        | {"step": fc["target_step"]},
        "interval": "none: the first measured point at or below the target",
    }


def _format_lower(r: dict) -> str:
    """:func:`format_target` of a lower-is-better metric."""
    lines = [f"target {r['target']:.4g} ({r['metric']}, lower is better; {r['series']} series): "
             f"{r['text']}"]
    if r["status"] == "reached":
        wall = "" if r["elapsed_s"] is None else f" ({r['elapsed_s']:,.0f} s)"
        lines.append(f"  first measured at step {r['step']:,.0f}{wall}")
    f = r["forecast_at_planned"]
    if r["status"] != "reached" and f["ok"] and None not in f["ci95"]:
        lines.append(f"  forecast at step {f['step']:,.0f}: {f['value']:.4g} "
                     f"[{f['ci95'][0]:.4g}, {f['ci95'][1]:.4g}]")
    elif r["status"] == "unknown":
        lines.append(f"  no forecast: {f['reason']}")
    return "\n".join(lines) + "\n"


def _fmt_step(v) -> str:
    return "beyond the plan" if v is None else f"{v:,.0f}"


def _fmt_s(v) -> str:
    return "beyond the plan" if v is None or not math.isfinite(v) else f"{v:,.0f} s"


def format_target(r: dict) -> str:
    """A few readable lines for the report."""
    if r.get("higher_is_better") is False:
        return _format_lower(r)
    lines = [f"target {100 * r['target_acc']:.2f}% ({r['series']} series): {r['text']}"]
    lo, hi = r["step_ci95"]
    if r["status"] == "reached":
        wall = "" if r["elapsed_s"] is None else f" ({r['elapsed_s']:,.0f} s)"
        crossing = ("" if lo is None and hi is None else f"; the expected accuracy crosses it "
                    f"at step [{_fmt_step(lo)}, {_fmt_step(hi)}] (95%)")
        lines.append(f"  first measured at step {r['step']:,.0f}{wall}{crossing}")
    elif r["status"] == "forecast":
        wall = "" if r["elapsed_s"] is None else (
            f", after {_fmt_s(r['elapsed_s'])} [{_fmt_s(r['elapsed_s_ci95'][0])}, "
            f"{_fmt_s(r['elapsed_s_ci95'][1])}] of training")
        lines.append(f"  at step {r['step']:,.0f} [{_fmt_step(lo)}, {_fmt_step(hi)}]{wall} "
                     f"(last step {r['last_step']:,.0f} of {r['planned_last_step']:,})")
    if r.get("earliest_possible_step") is not None:
        lines.append(f"  possible from step {r['earliest_possible_step']:,.0f} (upper edge of the "
                     "95% band)")
    f = r["forecast_at_planned"]
    if r["status"] != "reached" and f["ok"] and None not in f["ci95"]:
        lines.append(f"  forecast at step {f['step']:,.0f}: {100 * f['value']:.2f}% "
                     f"[{100 * f['ci95'][0]:.2f}, {100 * f['ci95'][1]:.2f}]")
    elif r["status"] != "reached" and not f["ok"]:
        lines.append(f"  no forecast: {f['reason']}")
    return "\n".join(lines) + "\n"
