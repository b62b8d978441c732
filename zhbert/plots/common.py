"""Shared helpers for the figure modules: data access on a History, drawing context, small widgets.

History objects come from ``zhbert.analysis.load_history``; only their ``train`` / ``eval`` frames
are read here, by the key names of :mod:`zhbert.history_schema` (``eval_mlm_acc`` etc.).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from zhbert import history_schema as H
from zhbert.plots import fonts
from zhbert.plots.style import COLORS, FONT_SIZES, style_context, text


def column(frame, name: str) -> np.ndarray | None:
    """Column ``name`` of ``frame`` as a float array, or None when absent."""
    if frame is None or name not in frame.columns:
        return None
    return np.asarray(frame[name], dtype=float)


def train_col(history, name: str) -> np.ndarray | None:
    """A training column (same length as the training steps) or None when not recorded."""
    values = column(history.train, name)
    if values is None or not np.isfinite(values).any():
        return None
    return values


def train_steps(history) -> np.ndarray:
    """Training steps as floats."""
    return column(history.train, H.STEPS)


def eval_col(history, name: str) -> np.ndarray | None:
    """A held-out column (``eval_mlm_acc``, ``eval_loss``, ``eval_stderr``, ``eval_steps``) or None."""
    frame = getattr(history, "eval", None)
    if frame is None or len(frame) == 0:
        return None
    values = column(frame, name)
    if values is None or not np.isfinite(values).any():
        return None
    return values


def _ema_pass(values: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    acc = values[0]
    for i, (v, a) in enumerate(zip(values, alpha, strict=True)):
        acc = acc + a * (v - acc)
        out[i] = acc
    return out


def ema(steps: np.ndarray, values: np.ndarray, halflife_fraction: float = 1 / 60) -> np.ndarray:
    """Zero-phase exponential moving average on a log-step clock, for display.

    Training curves change fastest in the first steps; an EMA over a fixed number of points lags
    badly there. Here the decay runs on log10(step) (half-life = ``halflife_fraction`` of the
    log-step range), so early points are barely smoothed and the long flat tail is smoothed a lot,
    and a forward then backward pass (as ``filtfilt``) removes the lag.
    """
    x = np.asarray(values, dtype=float)
    s = np.asarray(steps, dtype=float)
    if x.size < 3:
        return x.copy()
    floor = np.min(s[s > 0]) if (s > 0).any() else 1.0
    u = np.log10(np.maximum(s, floor))
    halflife = max((u[-1] - u[0]) * halflife_fraction, 1e-12)
    alpha = 1.0 - np.exp(-np.log(2) * np.abs(np.diff(u, prepend=u[0])) / halflife)
    alpha[0] = 1.0
    forward = _ema_pass(x, alpha)
    back_alpha = np.append(alpha[1:], 1.0)[::-1]  # the gap to the next point, walked backwards
    return _ema_pass(forward[::-1], back_alpha)[::-1]


def evaluate(family: str | None, params: Mapping[str, float] | None,
             t: np.ndarray) -> np.ndarray | None:
    """``evaluate_family`` guarded for missing/failed fits: None instead of an exception."""
    if not family or not params:
        return None
    from zhbert.analysis import evaluate_family

    try:
        y = evaluate_family(family, dict(params), np.asarray(t, dtype=float))
        y = np.asarray(y, dtype=float)
    except Exception:  # a family unknown to this analysis version or parameters out of domain
        return None
    y = np.where(np.isfinite(y), y, np.nan)  # log families are -inf at step 0: draw a gap
    return y if np.isfinite(y).any() else None


def get(mapping: Any, *keys: str, default: Any = None) -> Any:
    """Nested ``mapping[k1][k2]...`` that returns ``default`` on any missing level or None."""
    cur = mapping
    for key in keys:
        if not isinstance(cur, Mapping) or cur.get(key) is None:
            return default
        cur = cur[key]
    return cur


def error_bars(values, low, high) -> list[np.ndarray]:
    """``yerr`` for ``errorbar``: the distances from ``values`` down to ``low`` and up to
    ``high``, never negative (the interval of a constant series can sit a rounding error to one
    side of its own value; matplotlib refuses a negative bar, a zero-width one draws nothing)."""
    v = np.atleast_1d(np.asarray(values, dtype=float))
    down = np.clip(v - np.atleast_1d(np.asarray(low, dtype=float)), 0.0, None)
    up = np.clip(np.atleast_1d(np.asarray(high, dtype=float)) - v, 0.0, None)
    return [down, up]


def fmt_num(value: Any, digits: int = 4) -> str:
    """Compact number formatting; "n/a" for missing or non-finite values."""
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "n/a"
    if x.is_integer() and abs(x) < 1e9 and (isinstance(value, int) or abs(x) >= 100):
        return f"{int(x):,}"  # counts and steps: 30,000 rather than 3e+04
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.2e}"
    return f"{x:.{digits}g}"


def fmt_p(p: Any) -> str:
    """``"p = 0.012"``; values that underflow are shown as a bound (``"p < 1e-300"``), not 0."""
    try:
        x = float(p)
    except (TypeError, ValueError):
        return "p = n/a"
    if not math.isfinite(x):
        return "p = n/a"
    return "p < 1e-300" if x < 1e-300 else f"p = {fmt_num(x, 3)}"


def step_axis(ax) -> None:
    """Label the x axis with training steps, thousands written as "k"."""
    from matplotlib.ticker import FuncFormatter

    def _fmt(x, _pos):
        return f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"

    ax.xaxis.set_major_formatter(FuncFormatter(_fmt))


def plain_log_ticks(axis) -> None:
    """Plain numbers instead of ``6×10⁰`` on a log axis spanning less than ~1.3 decades."""
    from matplotlib.ticker import FuncFormatter

    lo, hi = axis.get_view_interval()
    if lo > 0 and hi / lo < 20:
        fmt = FuncFormatter(lambda v, _pos: f"{v:g}")
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(fmt)


def table_or_note(ax, rows: list[list[str]], header: list[str], empty: str,
                  row_scale: float = 1.2) -> None:
    """Draw ``rows`` as a centred table on the (hidden) axes ``ax``, or ``empty`` when none."""
    if not rows:
        note(ax, empty)
        return
    table = ax.table(cellText=rows, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(FONT_SIZES["small"])
    table.scale(1, row_scale)


def note(ax, message: str) -> None:
    """Centered grey message for a panel without data."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            color=COLORS["tail"], fontsize=FONT_SIZES["title"])
    ax.set_xticks([])
    ax.set_yticks([])


@contextlib.contextmanager
def drawing() -> Iterator[bool]:
    """Resolve the font lazily, apply the house style; yields True when Chinese text can be used."""
    font = fonts.resolve_font()
    with style_context(fonts.font_family(font)):
        yield font is not None


def series_for(history, analysis: Mapping | None):
    """The accuracy series the analysis used (its ``series.kind``), else the automatic choice."""
    from zhbert.analysis import select_series

    kind = get(analysis, "series", "kind", default="auto")
    return select_series(history, kind)


def metric_label(series, cjk: bool) -> str:
    """Axis label of an analysed series: the masked-LM accuracy's, else the metric's own name
    (``eval_loss``, ``val/acc``)."""
    name = getattr(series, "metric", H.MLM_ACC)
    return text("mlm_acc", cjk) if name in (H.MLM_ACC, H.EVAL_MLM_ACC) else name


def fmt_value(series, value: float) -> str:
    """A value of the series as text: an accuracy in percent, a lower-is-better metric as is.

    >>> from zhbert.analysis import Series
    >>> fmt_value(Series("eval", np.ones(1), np.ones(1)), 0.5), fmt_value(
    ...     Series("eval", np.ones(1), np.ones(1), "loss", False), 2.5)
    ('50.00%', '2.5')
    """
    return f"{100 * value:.2f}%" if getattr(series, "higher_is_better", True) else f"{value:.4g}"


def acc_label(kind: str, cjk: bool) -> str:
    """Legend label for an accuracy series of ``kind`` ("eval" or "train")."""
    return text("eval" if kind == "eval" else "train", cjk)


def baselines_for(history, analysis: Mapping | None) -> dict[str, float]:
    """The count-table baselines (``{name: accuracy}``) of the analysis, else of the history's
    ``meta``; empty when neither has them (older runs, the original study's file)."""
    from zhbert.baselines import read_baselines

    return read_baselines(analysis) or read_baselines(getattr(history, "meta", None)) or {}


def baseline_lines(ax, history, analysis: Mapping | None, cjk: bool) -> list:
    """Dotted horizontal reference lines at the count-table baselines on an accuracy panel, each
    labelled at its left end ("gap trigram 33.6%"; learning curves start low, and legends and
    extrapolation markers sit on the right); the y range grows to show them all.

    Call it last on the panel (after its own ``set_ylim``): labels of two close lines go one
    above and one below so they do not overlap. Returns the drawn lines (none without data).
    """
    from matplotlib.transforms import blended_transform_factory

    values = baselines_for(history, analysis)
    if not values:
        return []
    lo, hi = ax.get_ylim()
    lo, hi = min(lo, min(values.values())), max(hi, max(values.values()))
    ax.set_ylim(lo - 0.03 * (hi - lo), hi + 0.08 * (hi - lo))  # room for the top label
    lo, hi = ax.get_ylim()
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    ordered = sorted(values.items(), key=lambda kv: kv[1])
    lines = []
    for i, (name, value) in enumerate(ordered):
        above = ordered[i + 1][1] if i + 1 < len(ordered) else math.inf
        crowded = (above - value) < 0.06 * (hi - lo)  # the next label would sit on this one
        lines.append(ax.axhline(value, color=COLORS["baseline"], linestyle=":", linewidth=1.0,
                                zorder=1))
        ax.text(0.01, value, f"{text('baseline_' + name, cjk)} {100 * value:.1f}%",
                transform=trans, ha="left", va="top" if crowded else "bottom",
                fontsize=FONT_SIZES["small"], color=COLORS["baseline"], zorder=5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})
    return lines
