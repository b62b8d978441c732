"""Downstream score against pretraining step and held-out MLM accuracy (docs/DOWNSTREAM.md).

The input is a normalised table, one row per fine-tune: ``task``, ``step`` (the pretraining step
of the checkpoint fine-tuned; 0 = random initialisation), ``seed`` and ``score`` (the test score
of the task's main metric, a fraction), optionally ``dev_score`` and ``metric``. A run's record
file becomes such a table with :func:`zhbert.analysis.downstream_record.load_record`.

Each checkpoint step is matched to the run's held-out MLM accuracy at that step
(:func:`mlm_at_steps`: exact when the history has a held-out point there, interpolated between
the two neighbours otherwise, none outside the held-out steps, e.g. at step 0).

Per task (:func:`downstream_analysis`): the seeds' mean, SD, min and max per step; Pearson r of
score vs step and vs MLM accuracy with the Fisher interval, Spearman rho with a bootstrap
interval over whole checkpoints; the step where more pretraining stops paying
(:func:`saturation`); and whether the worst pretrained seed beats the best random-init seed at
each step (:func:`beats_random`). Correlations use every fine-tune as a point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from zhbert import history_schema as H
from zhbert.analysis.core import jsonable
from zhbert.analysis.correlation import pearson, spearman_bootstrap
from zhbert.errors import UserError

#: columns every table has, and the optional ones
COLUMNS = ("task", "step", "seed", "score")
OPTIONAL = ("dev_score", "metric")
#: bootstrap resamples of the Spearman interval (cheap: ranks of a few dozen points)
DEFAULT_N_BOOT = 2000
LEVEL = 0.95


def check_table(table: pd.DataFrame, where: str = "downstream table") -> pd.DataFrame:
    """The table validated and sorted by task, step, seed; a UserError names the first problem.

    >>> check_table(pd.DataFrame({"task": ["ner"], "step": [0.0], "seed": [1], "score": [0.5]}))
      task  step  seed  score
    0  ner     0     1    0.5
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)}")
    if table.empty:
        raise UserError(f"{where}: no rows")
    out = table.loc[:, [c for c in (*COLUMNS, *OPTIONAL) if c in table.columns]].copy()
    for col in ("step", "seed"):
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
        if bad.any():
            raise UserError(f"{where}: {col} must be a whole number >= 0 "
                            f"(row {int(np.argmax(bad))}: {out[col].iloc[int(np.argmax(bad))]!r})")
        out[col] = values.astype(np.int64)
    score = pd.to_numeric(out["score"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(score) | (score < 0) | (score > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{where}: score must be a fraction in [0, 1] "
                        f"(row {i}: {out['score'].iloc[i]!r})")
    out["score"] = score
    dup = out.duplicated(["task", "step", "seed"])
    if dup.any():
        t, s, k = out.loc[dup, ["task", "step", "seed"]].iloc[0]
        raise UserError(f"{where}: task {t} step {s} seed {k} appears more than once")
    return out.sort_values(["task", "step", "seed"], kind="stable").reset_index(drop=True)


def mlm_at_steps(eval_steps: Sequence[float], eval_acc: Sequence[float],
                 steps: Sequence[int]) -> dict[int, dict]:
    """The held-out MLM accuracy at each checkpoint step, and how it was found: ``exact`` (a
    held-out point at that step), ``interpolated`` (linearly between the two held-out points
    around it) or ``outside`` (before the first or after the last held-out point: None).

    >>> m = mlm_at_steps([100, 200], [0.25, 0.75], [0, 100, 150])
    >>> [(s, m[s]["mlm_acc"], m[s]["how"]) for s in m]
    [(0, None, 'outside'), (100, 0.25, 'exact'), (150, 0.5, 'interpolated')]
    """
    xs, ys = np.asarray(eval_steps, dtype=float), np.asarray(eval_acc, dtype=float)
    out = {}
    for step in steps:
        hit = np.flatnonzero(xs == step)
        if hit.size:
            out[int(step)] = {"mlm_acc": float(ys[hit[0]]), "how": "exact"}
        elif xs.size and xs[0] < step < xs[-1]:
            out[int(step)] = {"mlm_acc": float(np.interp(step, xs, ys)), "how": "interpolated"}
        else:
            out[int(step)] = {"mlm_acc": None, "how": "outside"}
    return out


def step_stats(scores: Sequence[float]) -> dict:
    """The seeds' scores at one step: count, mean, SD (ddof=1; None for one seed), min, max.

    >>> step_stats([0.5, 0.75, 1.0])
    {'n': 3, 'mean': 0.75, 'sd': 0.25, 'min': 0.5, 'max': 1.0}
    """
    s = np.asarray(scores, dtype=float)
    return {"n": int(s.size), "mean": float(s.mean()),
            "sd": float(s.std(ddof=1)) if s.size > 1 else None,
            "min": float(s.min()), "max": float(s.max())}


def pooled_sd(sds: Sequence[float | None]) -> float:
    """Root mean of the per-step variances (steps with one seed have none and are skipped);
    0 when no step has two seeds.

    >>> pooled_sd([0.03, None, 0.04])
    0.035355339059327376
    """
    var = [s * s for s in sds if s is not None and math.isfinite(s)]
    return float(math.sqrt(sum(var) / len(var))) if var else 0.0


def saturation(steps: Sequence[int], means: Sequence[float], sds: Sequence[float | None]) -> dict:
    """Where more pretraining stops paying: the first step whose mean score is within the seeds'
    spread (the pooled SD, :func:`pooled_sd`) of the best step's mean.

    Later checkpoints may still be better, but by less than fine-tuning noise at this budget.
    ``still_rising`` says the rule picked the last step: the run had not stopped paying.

    >>> saturation([0, 1000, 2000, 4000, 8000], [0.5, 0.7, 0.78, 0.8, 0.81], [0.02] * 5)
    {'step': 4000, 'best_step': 8000, 'best_mean': 0.81, 'tolerance': 0.02, 'still_rising': False}
    """
    means = np.asarray(means, dtype=float)
    best = int(np.argmax(means))
    tol = pooled_sd(sds)
    first = int(np.flatnonzero(means >= means[best] - tol)[0])
    return {"step": int(steps[first]), "best_step": int(steps[best]),
            "best_mean": float(means[best]), "tolerance": tol,
            "still_rising": first == len(steps) - 1}


def beats_random(rows: pd.DataFrame) -> list[dict] | None:
    """At each pretrained step: does its worst seed score above the best random-init (step 0)
    seed? None without random-init rows.

    >>> t = pd.DataFrame({"step": [0, 0, 500, 500], "score": [0.6, 0.7, 0.72, 0.69]})
    >>> [(r["step"], r["beats"]) for r in beats_random(t)]
    [(500, False)]
    """
    random = rows.loc[rows["step"] == 0, "score"]
    if random.empty:
        return None
    best = float(random.max())
    out = []
    for step, group in rows[rows["step"] > 0].groupby("step", sort=True):
        worst = float(group["score"].min())
        out.append({"step": int(step), "worst_seed": worst, "best_random_seed": best,
                    "margin": worst - best, "beats": worst > best})
    return out


def correlate(x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> dict:
    """Pearson (Fisher interval over the points) and Spearman (bootstrap over whole groups) of
    ``y`` on ``x``, and Pearson of the group means (``pearson_means``, Fisher interval over the
    groups: the checkpoint-level question); points with no ``x`` are left out, and a constant
    series has no correlation."""
    keep = np.isfinite(x)
    x, y, groups = x[keep], y[keep], groups[keep]
    units = np.unique(groups)
    out = {"n": int(x.size), "n_checkpoints": int(units.size)}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {**out, "pearson": None, "spearman": None, "pearson_means": None,
                "reason": "fewer than 3 points" if x.size < 3 else "constant values"}
    mx = np.array([x[groups == u].mean() for u in units])
    my = np.array([y[groups == u].mean() for u in units])
    means = pearson(mx, my, LEVEL) if units.size >= 3 and np.ptp(my) > 0 else None
    return {**out, "pearson": pearson(x, y, LEVEL),
            "spearman": spearman_bootstrap(x, y, groups, n_boot=n_boot, seed=seed, level=LEVEL),
            "pearson_means": means}


def _metric(rows: pd.DataFrame) -> str | None:
    if "metric" not in rows.columns:
        return None
    names = sorted({str(m) for m in rows["metric"].dropna()})
    return "/".join(names) if names else None


def task_summary(rows: pd.DataFrame, mlm: dict[int, dict], n_boot: int, seed: int) -> dict:
    """Every statistic of one task's rows (see :func:`downstream_analysis`)."""
    steps = sorted(int(s) for s in rows["step"].unique())
    wins = {r["step"]: r for r in beats_random(rows) or []}
    per_step = []
    for step in steps:
        m = mlm.get(step, {"mlm_acc": None, "how": "none"})
        per_step.append({"step": step, **step_stats(rows.loc[rows["step"] == step, "score"]),
                         "mlm_acc": m["mlm_acc"], "mlm_how": m["how"],
                         "beats_random": wins[step]["beats"] if step in wins else None})
    x_mlm = np.array([np.nan if mlm.get(int(s), {}).get("mlm_acc") is None
                      else mlm[int(s)]["mlm_acc"] for s in rows["step"]], dtype=float)
    score, step_col = rows["score"].to_numpy(float), rows["step"].to_numpy(float)
    pretrained = [r for r in per_step if r["step"] > 0]
    return {
        "metric": _metric(rows),
        "n_rows": int(len(rows)),
        "seeds": sorted(int(s) for s in rows["seed"].unique()),
        "steps": per_step,
        "vs_step": correlate(step_col, score, step_col, n_boot, seed),
        "vs_mlm_acc": correlate(x_mlm, score, step_col, n_boot, seed),
        "saturation": saturation([r["step"] for r in per_step], [r["mean"] for r in per_step],
                                 [r["sd"] for r in per_step]),
        "beats_random": {"rows": list(wins.values()),
                         "all": all(w["beats"] for w in wins.values()) if wins else None,
                         "n_pretrained_steps": len(pretrained)},
        "rows": [{"step": int(r.step), "seed": int(r.seed), "score": float(r.score),
                  "mlm_acc": None if math.isnan(x) else float(x)}
                 for r, x in zip(rows.itertuples(), x_mlm, strict=True)],
    }


def _mlm_notes(mlm: dict[int, dict], has_eval: bool) -> list[str]:
    if not has_eval:
        return ["the history has no held-out series: no correlation with MLM accuracy"]
    notes = []
    for how, says in (("interpolated", "interpolated between the neighbouring held-out points"),
                      ("outside", "outside the held-out steps, so left out of the correlations "
                                  "with MLM accuracy")):
        hit = [f"{s:,}" for s, m in mlm.items() if m["how"] == how]
        if hit:
            notes.append(f"held-out MLM accuracy at step(s) {', '.join(hit)}: {says}")
    return notes


def downstream_analysis(table: pd.DataFrame, eval_steps: Sequence[float] | None = None,
                        eval_acc: Sequence[float] | None = None, n_boot: int = DEFAULT_N_BOOT,
                        seed: int = 0, notes: Sequence[str] = (), record: str | None = None) -> dict:
    """The JSON-able ``downstream`` block: ``tasks.<task>`` holds ``metric``, ``steps[]``
    (``{step, n, mean, sd, min, max, mlm_acc, mlm_how, beats_random}``), ``vs_step`` and
    ``vs_mlm_acc`` (``{n, n_checkpoints, pearson{r, p_value, ci95}, spearman{rho, ci95, ...},
    pearson_means}``),
    ``saturation``, ``beats_random`` and the fine-tunes (``rows[]``, for the figure); ``record``
    names the file the table came from, ``notes`` what was left out or interpolated."""
    table = check_table(table)
    has_eval = eval_steps is not None and eval_acc is not None and len(eval_steps) > 0
    steps = sorted(int(s) for s in table["step"].unique())
    mlm = mlm_at_steps(eval_steps, eval_acc, steps) if has_eval else {}
    tasks = {str(task): task_summary(rows.reset_index(drop=True), mlm, n_boot, seed)
             for task, rows in table.groupby("task", sort=True)}
    return jsonable({
        "record": record,
        "tasks": tasks,
        "mlm_source": H.EVAL_MLM_ACC if has_eval else None,
        "bootstrap": {"unit": "checkpoint", "n_boot": n_boot, "seed": seed, "level": LEVEL},
        "notes": [*notes, *_mlm_notes(mlm, has_eval)],
    })


def history_mlm(history) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The held-out ``eval_steps`` / ``eval_mlm_acc`` of a loaded History (None, None without)."""
    ev = getattr(history, "eval", None)
    if ev is None or len(ev) == 0:
        return None, None
    return (ev[H.EVAL_STEPS].to_numpy(dtype=float), ev[H.EVAL_MLM_ACC].to_numpy(dtype=float))
