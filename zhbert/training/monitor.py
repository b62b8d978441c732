"""Watch a run live: a TensorBoard mirror of the history and a forecast of the final accuracy.

The JSON history stays the record of truth; :class:`Monitor` adds to each held-out evaluation a
forecast of the held-out accuracy at the run's planned final step (with its 95% interval) and
an estimated finish time, and mirrors every history row to TensorBoard event files in
``RUN/tensorboard`` (rank 0 only, flushed at every log point). A resumed run writes its events
with ``purge_step`` = the checkpoint's step + 1, so TensorBoard drops what the interrupted
session logged after that checkpoint and the curves continue without duplicated steps.

The forecast is the analysis library's (:mod:`zhbert.training.live_forecast`); it is imported
only when ``run.forecast`` is on, so importing the trainer does not load the statistics stack.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zhbert import history_schema as H
from zhbert.baselines import read_baselines, unigram_floor

TB_DIR = "tensorboard"
TRAIN_TAGS = {H.MLM_ACC: "train/mlm_acc", H.LOSS: "train/loss", H.NSP_ACC: "train/nsp_acc",
              H.LR: "train/lr", H.GRAD_NORM: "train/grad_norm",
              H.SKIPPED_STEPS: "train/skipped_steps",
              H.TOKENS_PER_S: "train/tokens_per_s", H.DATA_WAIT_FRAC: "train/data_wait_frac"}
EVAL_TAGS = {H.EVAL_MLM_ACC: "eval/mlm_acc", H.EVAL_LOSS: "eval/loss",
             H.EVAL_STDERR: "eval/mlm_acc_stderr", H.EVAL_NSP_ACC: "eval/nsp_acc",
             H.EVAL_FORECAST_ACC: "forecast/final_acc", H.EVAL_FORECAST_LOW: "forecast/final_acc_low",
             H.EVAL_FORECAST_HIGH: "forecast/final_acc_high", H.EVAL_ETA_S: "forecast/eta_s"}


def remaining_seconds(step: int, max_steps: int, mark: tuple[int, float], elapsed: float
                      ) -> float | None:
    """Wall seconds left at the pace measured since ``mark`` = (step, elapsed) (evals included)."""
    done = step - mark[0]
    if done <= 0:
        return None
    return max(max_steps - step, 0) * (elapsed - mark[1]) / done


def format_duration(seconds: float) -> str:
    """``3h05m``, ``12m40s`` or ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def load_forecaster() -> Callable[..., dict | None]:
    """:func:`zhbert.training.live_forecast.live_forecast`, imported on first use (it loads
    scipy, pandas and statsmodels through :mod:`zhbert.analysis`)."""
    from zhbert.training.live_forecast import live_forecast

    return live_forecast


def _open_writer(log_dir: Path, step: int):
    """A SummaryWriter; when earlier sessions left events, purge those after ``step``."""
    from torch.utils.tensorboard import SummaryWriter

    earlier = log_dir.is_dir() and any(log_dir.glob("events.out.tfevents.*"))
    return SummaryWriter(str(log_dir), purge_step=step + 1 if earlier else None)


class Monitor:
    """Forecast at held-out evaluations and the TensorBoard mirror of one run.

    Reads the run's :class:`~zhbert.training.setup.Setup` (config, history, rank) and its
    :class:`~zhbert.training.state.Progress` (step, clock). Every rank holds one; only rank 0
    forecasts and writes events.
    """

    def __init__(self, setup, progress):
        self.setup, self.progress = setup, progress
        main = setup.dist.is_main
        # rank 0 with run.forecast on: the analysis loads here, not at the first evaluation
        self.forecaster = load_forecaster() if main and setup.cfg.run.forecast else None
        self.writer = _open_writer(setup.run_dir / TB_DIR, progress.step) if (
            main and setup.cfg.run.tensorboard) else None
        self.mark = (progress.step, progress.elapsed())
        self.cost_s = 0.0  # wall seconds spent forecasting (benchmarks/live_overhead.py)
        self.last: dict[str, Any] = {}

    # ------------------------------------------------------------------ forecast

    def forecast(self, row: dict) -> dict:
        """Forecast columns for the held-out ``row`` about to be appended to the history."""
        t = time.perf_counter()
        s, p = self.setup, self.progress
        target = p.planned_steps
        out = dict.fromkeys(H.FORECAST_KEYS)
        elapsed = p.elapsed()
        eta = remaining_seconds(p.step, target, self.mark, elapsed)
        self.mark = (p.step, elapsed)
        out[H.EVAL_ETA_S] = None if eta is None else round(eta, 1)
        self.last = out
        if self.forecaster is None:
            return out
        h = s.history.data
        fc = self.forecaster(h[H.EVAL_STEPS] + [row[H.EVAL_STEPS]],
                             h[H.EVAL_MLM_ACC] + [row[H.EVAL_MLM_ACC]], s.cfg.to_dict(),
                             seed=s.cfg.run.seed,
                             time_budget=h[H.META_KEY].get(H.META_TIME_BUDGET),
                             floor=unigram_floor(h[H.META_KEY]), meta=h[H.META_KEY])
        if fc is not None:
            out.update({H.EVAL_FORECAST_STEP: fc["step"], H.EVAL_FORECAST_ACC: fc["acc"],
                        H.EVAL_FORECAST_LOW: fc["low"], H.EVAL_FORECAST_HIGH: fc["high"]})
        self.cost_s += time.perf_counter() - t
        return out

    def describe(self) -> str:
        """The forecast part of the eval log line ('' before the first forecast)."""
        f = self.last
        parts = []
        if f.get(H.EVAL_FORECAST_ACC) is not None:
            parts.append(f"forecast at step {f[H.EVAL_FORECAST_STEP]}: "
                         f"{f[H.EVAL_FORECAST_ACC]:.4f} [{f[H.EVAL_FORECAST_LOW]:.4f}, "
                         f"{f[H.EVAL_FORECAST_HIGH]:.4f}]")
        eta = f.get(H.EVAL_ETA_S)
        if eta:  # None before a pace is measured, 0 at the last step
            end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=eta)
            parts.append(f"finish in {format_duration(eta)} (~{end:%H:%M} UTC)")
        return "; " + ", ".join(parts) if parts else ""

    def bar_text(self) -> str | None:
        """Short forecast for the progress bar, e.g. ``0.152[0.148,0.161]``."""
        f = self.last
        if f.get(H.EVAL_FORECAST_ACC) is None:
            return None
        return (f"{f[H.EVAL_FORECAST_ACC]:.3f}[{f[H.EVAL_FORECAST_LOW]:.3f},"
                f"{f[H.EVAL_FORECAST_HIGH]:.3f}]")

    # ------------------------------------------------------------------ TensorBoard

    def _scalars(self, row: dict, tags: dict[str, str], step: int) -> None:
        for key, tag in tags.items():
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag, value, step)

    def on_train(self, row: dict) -> None:
        """Mirror one training log point."""
        if self.writer is not None:
            self._scalars(row, TRAIN_TAGS, row[H.STEPS])
            self.writer.flush()

    def on_eval(self, row: dict) -> None:
        """Mirror one held-out row (with its forecast columns) and the baselines, if recorded."""
        if self.writer is None:
            return
        step = row[H.EVAL_STEPS]
        self._scalars(row, EVAL_TAGS, step)
        for name, value in (read_baselines(self.setup.history.data[H.META_KEY]) or {}).items():
            self.writer.add_scalar(f"baselines/{name}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

