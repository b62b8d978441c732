"""Downstream score against pretraining step and held-out MLM accuracy: the statistics on
hand-made tables, the record reader and its one-line errors, downstream.png, and the
``--downstream`` flags of analyze_100k.py and visualize_results.py end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from helpers_plots import downstream_record, write_history, zhbert_history
from scipy import stats

from zhbert.analysis.correlation import fisher_ci, spearman_bootstrap
from zhbert.analysis.downstream import (
    beats_random,
    check_table,
    downstream_analysis,
    mlm_at_steps,
    saturation,
)
from zhbert.analysis.downstream_record import load_record
from zhbert.analysis.downstream_report import format_downstream, steps_markdown, summary_markdown
from zhbert.errors import UserError, run_cli


def _table(steps, scores, task="ner", seeds=None) -> pd.DataFrame:
    seeds = seeds if seeds is not None else [0] * len(steps)
    return pd.DataFrame({"task": task, "step": steps, "seed": seeds, "score": scores})


# ----------------------------------------------------------------------------- statistics


def test_pearson_and_spearman_on_a_hand_made_table():
    """x = 1..5, y = 2, 4, 5, 4, 5: r = sqrt(0.6); the average ranks of y give rho = 7/sqrt(90)."""
    table = _table([1000, 2000, 3000, 4000, 5000], [0.2, 0.4, 0.5, 0.4, 0.5])
    eval_steps = [1000, 2000, 3000, 4000, 5000]
    block = downstream_analysis(table, eval_steps, [0.1, 0.2, 0.3, 0.4, 0.5], n_boot=300)
    t = block["tasks"]["ner"]
    for key in ("vs_step", "vs_mlm_acc"):  # MLM accuracy is a linear map of the step here
        p, s = t[key]["pearson"], t[key]["spearman"]
        assert p["r"] == pytest.approx(math.sqrt(0.6))
        half = stats.norm.ppf(0.975) / math.sqrt(5 - 3)
        assert p["ci95"] == pytest.approx([math.tanh(math.atanh(math.sqrt(0.6)) - half),
                                           math.tanh(math.atanh(math.sqrt(0.6)) + half)])
        assert s["rho"] == pytest.approx(7 / math.sqrt(90))
        assert s["ci95"][0] <= s["rho"] <= s["ci95"][1] and s["ci95"][0] < s["ci95"][1]
        assert t[key]["n"] == 5 and t[key]["n_checkpoints"] == 5
    json.dumps(block, allow_nan=False)


def test_spearman_bootstrap_is_deterministic_and_resamples_whole_groups():
    x = np.repeat([0.0, 1, 2, 3, 4], 3)
    y = x * 0.1 + np.tile([0.0, 0.05, -0.05], 5) * 3
    a = spearman_bootstrap(x, y, groups=x, n_boot=400, seed=3)
    assert a == spearman_bootstrap(x, y, groups=x, n_boot=400, seed=3)
    assert a["ci95"] != spearman_bootstrap(x, y, groups=x, n_boot=400, seed=4)["ci95"]
    assert a["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert a["ci95"][0] <= a["rho"] <= a["ci95"][1]
    assert (a["unit"], a["n_units"]) == ("group", 5)
    points = spearman_bootstrap(x, y, n_boot=400, seed=3)
    assert (points["unit"], points["n_units"]) == ("point", 15)
    # a group resample draws 5 checkpoints: few distinct steps, so the interval is wider
    assert a["ci95"][1] - a["ci95"][0] > points["ci95"][1] - points["ci95"][0]


def test_weighted_spearman_equals_ranking_each_expanded_resample():
    from zhbert.analysis.correlation import weighted_spearman

    rng = np.random.default_rng(0)
    x, y = np.repeat([0.0, 1, 2, 3], 2), rng.normal(size=8).round(1)  # ties in x and in y
    weights = rng.integers(0, 3, size=(40, 8))
    got = weighted_spearman(x, y, weights)
    for w, rho in zip(weights, got, strict=True):
        xs, ys = np.repeat(x, w), np.repeat(y, w)
        if np.ptp(xs) > 0 and np.ptp(ys) > 0:
            assert rho == pytest.approx(stats.spearmanr(xs, ys).statistic)
        else:
            assert math.isnan(rho)


def test_checkpoint_steps_are_matched_to_the_held_out_accuracy():
    m = mlm_at_steps([100, 200, 300], [0.1, 0.3, 0.4], [0, 100, 250, 300, 400])
    assert m == {0: {"mlm_acc": None, "how": "outside"}, 100: {"mlm_acc": 0.1, "how": "exact"},
                 250: {"mlm_acc": pytest.approx(0.35), "how": "interpolated"},
                 300: {"mlm_acc": 0.4, "how": "exact"}, 400: {"mlm_acc": None, "how": "outside"}}
    table = _table([0, 100, 250, 300, 400], [0.5, 0.6, 0.7, 0.72, 0.73])
    block = downstream_analysis(table, [100, 200, 300], [0.1, 0.3, 0.4], n_boot=50)
    t = block["tasks"]["ner"]
    assert [(s["step"], s["mlm_how"]) for s in t["steps"]] == [
        (0, "outside"), (100, "exact"), (250, "interpolated"), (300, "exact"), (400, "outside")]
    assert t["vs_step"]["n"] == 5 and t["vs_mlm_acc"]["n"] == 3  # steps 0 and 400 left out
    assert [r["mlm_acc"] for r in t["rows"]] == [None, 0.1, pytest.approx(0.35), 0.4, None]
    assert any("250: interpolated" in n for n in block["notes"])
    assert any("0, 400: outside the held-out steps" in n for n in block["notes"])
    no_eval = downstream_analysis(table, n_boot=50)
    assert no_eval["mlm_source"] is None and no_eval["tasks"]["ner"]["vs_mlm_acc"]["pearson"] is None
    assert "no held-out series" in no_eval["notes"][0]


def test_where_more_pretraining_stops_paying_on_a_saturating_case():
    steps = [0, 1000, 2000, 4000, 8000]
    seeds = [0, 1, 2]
    means = [0.50, 0.70, 0.795, 0.80, 0.81]
    rows = [(s, k, m + d) for s, m in zip(steps, means, strict=True)
            for k, d in zip(seeds, (-0.02, 0.0, 0.02), strict=True)]
    table = pd.DataFrame(rows, columns=["step", "seed", "score"]).assign(task="cws")
    t = downstream_analysis(table, n_boot=50)["tasks"]["cws"]
    sat = t["saturation"]
    # the seeds' SD is 0.02 at every step: 0.795 is within 0.02 of the best mean 0.81, 0.70 is not
    assert sat == {"step": 2000, "best_step": 8000, "best_mean": pytest.approx(0.81),
                   "tolerance": pytest.approx(0.02), "still_rising": False}
    pm = t["vs_step"]["pearson_means"]  # the checkpoint-level r: means only, n = 5 checkpoints
    assert pm["r"] == pytest.approx(np.corrcoef(steps, means)[0, 1])
    assert pm["ci95"] == pytest.approx(fisher_ci(pm["r"], 5))
    assert 0 < t["vs_step"]["pearson"]["r"] < pm["r"]  # the seeds' spread lowers the row-level r
    rising = saturation([0, 1000, 2000], [0.5, 0.6, 0.7], [0.01, 0.01, 0.01])
    assert rising["step"] == 2000 and rising["still_rising"]
    assert saturation([0, 1], [0.5, 0.6], [None, None])["tolerance"] == 0.0  # one seed: no spread


def test_worst_pretrained_seed_against_best_random_seed():
    table = pd.DataFrame({"step": [0, 0, 0, 500, 500, 500, 1000, 1000],
                          "score": [0.60, 0.65, 0.62, 0.64, 0.70, 0.71, 0.66, 0.68]})
    rows = beats_random(table)
    assert [(r["step"], r["beats"], r["margin"]) for r in rows] == [
        (500, False, pytest.approx(-0.01)), (1000, True, pytest.approx(0.01))]
    assert beats_random(table[table["step"] > 0]) is None
    full = downstream_analysis(table.assign(task="ner", seed=[0, 1, 2, 0, 1, 2, 0, 1]), n_boot=50)
    b = full["tasks"]["ner"]["beats_random"]
    assert b["all"] is False and b["n_pretrained_steps"] == 2
    assert [s["beats_random"] for s in full["tasks"]["ner"]["steps"]] == [None, False, True]


def test_step_statistics_and_the_markdown_tables():
    table = pd.DataFrame({"task": ["ner"] * 6 + ["sentiment"] * 2,
                          "step": [0, 0, 1000, 1000, 2000, 2000, 0, 2000],
                          "seed": [0, 1, 0, 1, 0, 1, 0, 0],
                          "score": [0.5, 0.52, 0.7, 0.74, 0.8, 0.8, 0.6, 0.9],
                          "metric": ["f1"] * 6 + ["accuracy"] * 2})
    block = downstream_analysis(table, [1000, 2000], [0.3, 0.4], n_boot=50)
    ner = block["tasks"]["ner"]
    assert ner["metric"] == "f1" and ner["n_rows"] == 6 and ner["seeds"] == [0, 1]
    s = ner["steps"][1]
    assert (s["step"], s["n"], s["mean"], s["min"], s["max"]) == (1000, 2, pytest.approx(0.72),
                                                                  0.7, 0.74)
    assert s["sd"] == pytest.approx(np.std([0.7, 0.74], ddof=1))
    md = steps_markdown(block).splitlines()
    assert len(md) == 2 + 3 + 2  # header, rule, one row per (task, step)
    assert md[2] == "| ner | 0 (random init) | n/a | 2 | 51.00 | 1.41 | 50.00 | 52.00 | — |"
    assert md[3] == "| ner | 1,000 | 30.00 | 2 | 72.00 | 2.83 | 70.00 | 74.00 | yes |"
    summary = summary_markdown(block).splitlines()
    assert len(summary) == 4 and summary[3].startswith("| sentiment | accuracy | 2 | ")
    # 0.72 at step 1,000 is not within the pooled seed SD (0.018) of 0.80: still rising
    assert "| not yet (best at the last step, 2,000) | yes |" in summary[2]
    assert "| 0.94 [n/a] |" in summary[2]  # rho vs MLM accuracy: 2 checkpoints, no interval
    report = format_downstream(block)
    assert "下游任务 | Downstream tasks" in report and md[3] in report


@pytest.mark.parametrize("table, message", [
    (pd.DataFrame({"task": ["a"], "step": [1], "seed": [0]}), "missing column(s) score"),
    (_table([1], [1.5]), "score must be a fraction"),
    (_table([-5], [0.5]), "step must be a whole number"),
    (_table([1.5], [0.5]), "step must be a whole number"),
    (_table([1, 1], [0.5, 0.6]), "task ner step 1 seed 0 appears more than once"),
    (_table([], []), "no rows"),
])
def test_bad_tables_are_one_user_error(table, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_table(table)


# ------------------------------------------------------------------------------- record


def _write_record(tmp_path, data, name="downstream_scores.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_the_record_becomes_the_normalised_table(tmp_path):
    data = downstream_record(steps=(0, 1000), tasks=("ner",), seeds=(0, 1))
    last = data["records"][-1]
    rerun = dict(last, score=0.99)  # step 1000 seed 1 again: the last record wins
    headline = dict(last, seed=7, budget="full")  # the longer headline fine-tune
    dev = dict(last, split="dev")
    data["records"] += [rerun, headline, dev]
    record = load_record(_write_record(tmp_path, data))
    t = record.table
    assert list(t.columns) == ["task", "step", "seed", "score", "dev_score", "metric"]
    assert t[["step", "seed"]].to_numpy().tolist() == [[0, 0], [0, 1], [1000, 0], [1000, 1]]
    assert t["score"].iloc[-1] == 0.99 and t["metric"].iloc[0] == "entity_f1"
    assert t["dev_score"].iloc[0] == pytest.approx(t["score"].iloc[0] + 0.01)
    assert record.notes == [
        "1 record(s) of another split than 'test' not used",
        "1 repeated fine-tune(s) (same task, step, seed and budget): the last record of each is "
        "used",
        "ner: 1 record(s) with another budget than 'study' left out"]


def test_a_record_written_by_the_schema_is_read(tmp_path):
    from zhbert import downstream_schema as S

    rows = downstream_record(steps=(0, 500), tasks=("cws",), seeds=(0,))["records"]
    S.save_records(tmp_path, rows)
    record = load_record(S.scores_path(tmp_path))
    assert record.table[["task", "step", "score"]].to_numpy().tolist() == [
        [r["task"], r["step"], r["score"]] for r in rows]


def _entry(**change):
    base = {"task": "ner", "step": 10, "init": "pretrained", "seed": 0, "split": "test",
            "metric": "entity_f1", "score": 0.5}
    return {"format_version": 1,
            "records": [{k: v for k, v in {**base, **change}.items() if v != "DROP"}]}


@pytest.mark.parametrize("data, message", [
    ("[1, 2]", "not a downstream scores file of format 1"),
    ({"format_version": 2, "records": [{}]}, "not a downstream scores file of format 1"),
    ({"format_version": 1, "records": []}, "the scores file has no records"),
    ({"format_version": 1, "records": [3]}, "records[0]: a record is not a JSON object"),
    (_entry(seed="DROP"), "records[0]: a record has no 'seed'"),
    (_entry(colour="red"), "unknown record key 'colour'"),
    (_entry(step=True), "'step' is True, not int"),
    (_entry(step=-5), "'step' is -5, not a whole number >= 0"),
    (_entry(init="scratch"), "init 'scratch' is not one of pretrained, random"),
    (_entry(init="random"), "a 'random' init has step 0 (got step 10)"),
    (_entry(score=83.1), "'score' is 83.1, not a fraction in [0, 1]"),
    (_entry(dev_score=-0.1), "'dev_score' is -0.1, not a fraction in [0, 1]"),
    (_entry(split="dev"), "no 'test' records"),
    ("{not json", "invalid JSON"),
])
def test_bad_records_are_one_user_error(tmp_path, data, message):
    path = _write_record(tmp_path, data)
    with pytest.raises(UserError) as exc:
        load_record(path)
    assert str(exc.value).startswith(str(path)) and message in str(exc.value), str(exc.value)
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------------- figure


def _block(tmp_path, tasks=("ner", "sentiment")):
    history = zhbert_history(n=60, total=3000, n_eval=10)
    record = load_record(_write_record(tmp_path, downstream_record(tasks=tasks)))
    return downstream_analysis(record.table, history["eval_steps"], history["eval_mlm_acc"],
                               n_boot=100)


@pytest.mark.parametrize("tasks", [("ner",), ("ner", "cws", "sentiment")])
def test_the_figure_has_two_panels_per_task(tmp_path, monkeypatch, tasks):
    from PIL import Image

    from zhbert.plots import FIGURES
    from zhbert.plots import figures_downstream as fd
    from zhbert.plots.style import MAX_PNG_BYTES

    seen = {}
    real_save = fd.save_figure

    def spy(fig, path, dpi):
        from matplotlib.text import Text

        seen["axes"] = [ax for ax in fig.axes if ax.has_data()]
        seen["text"] = " ".join(t.get_text() for t in fig.findobj(Text))
        return real_save(fig, path, dpi)

    monkeypatch.setattr(fd, "save_figure", spy)
    analysis = {"downstream": _block(tmp_path, tasks)}
    path = FIGURES["downstream"](None, analysis, tmp_path / "downstream.png")
    assert len(seen["axes"]) == 2 * len(tasks)
    assert "命名实体识别" in seen["text"] and "Pretraining step" in seen["text"]
    assert "验证集MLM准确率" in seen["text"] and "random init" in seen["text"]
    assert path.stat().st_size < MAX_PNG_BYTES
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= 600 and img.size[1] >= 1000
    again = FIGURES["downstream"](None, analysis, tmp_path / "again.png")
    assert again.read_bytes() == path.read_bytes()


def test_the_figure_falls_back_to_english_labels(tmp_path, monkeypatch):
    from matplotlib.text import Text

    from zhbert.plots import figures_downstream as fd
    from zhbert.plots import fonts

    seen: list[str] = []
    real_save = fd.save_figure
    monkeypatch.setattr(fd, "save_figure", lambda fig, path, dpi: (
        seen.extend(t.get_text() for t in fig.findobj(Text)), real_save(fig, path, dpi))[1])
    monkeypatch.setattr(fonts, "find_cjk_font", lambda chars=None: None)
    fonts.reset_font_cache()
    try:
        with pytest.warns(RuntimeWarning, match="Chinese glyphs"):
            fd.downstream(None, {"downstream": _block(tmp_path)}, tmp_path / "d.png")
    finally:
        fonts.reset_font_cache()
    assert "Held-out MLM accuracy" in seen and any(s.startswith("NER\nr 0.") for s in seen)
    assert not [s for s in seen if any("\u4e00" <= c <= "\u9fff" for c in s)]


def test_drawing_the_figure_restores_rcparams(tmp_path):
    import matplotlib
    import seaborn  # noqa: F401  (imported first, so that only the drawing is compared)

    from zhbert.plots import figures_downstream as fd

    before = dict(matplotlib.rcParams)
    fd.downstream(None, {"downstream": _block(tmp_path)}, tmp_path / "d.svg")
    assert dict(matplotlib.rcParams) == before


# ---------------------------------------------------------------------------- commands


@pytest.fixture
def run_dir(tmp_path):
    """A tiny run: a history with 10 held-out points (steps 300..3000) and its record."""
    history = write_history(tmp_path, "training_history.json",
                            zhbert_history(n=60, total=3000, n_eval=10))
    record = _write_record(tmp_path, downstream_record())
    return history, record


def test_analyze_adds_a_downstream_section(run_dir, tmp_path, capsys):
    import analyze_100k

    history, record = run_dir
    out = tmp_path / "a.json"
    with pytest.raises(SystemExit) as exc:
        run_cli(analyze_100k.main, ["--history", str(history), "--downstream", str(record),
                                    "--n-boot", "10", "--output", str(out)])
    stdout = capsys.readouterr().out
    assert exc.value.code == 0
    block = json.loads(out.read_text())["downstream"]
    assert sorted(block["tasks"]) == ["ner", "sentiment"] and block["record"] == str(record)
    ner = block["tasks"]["ner"]
    assert [s["step"] for s in ner["steps"]] == [0, 600, 1200, 1800, 2400, 3000]
    assert [s["mlm_how"] for s in ner["steps"]] == ["outside"] + ["exact"] * 5
    assert ner["beats_random"]["all"] is True and ner["vs_mlm_acc"]["n"] == 15
    assert "下游任务 | Downstream tasks" in stdout and "| ner | 1,200 |" in stdout
    with pytest.raises(SystemExit) as exc:  # without the flag: no section
        run_cli(analyze_100k.main, ["--history", str(history), "--n-boot", "10",
                                    "--output", str(out)])
    assert exc.value.code == 0 and "downstream" not in json.loads(out.read_text())
    assert "Downstream" not in capsys.readouterr().out


def test_visualize_draws_downstream_png_only_when_asked(run_dir, tmp_path, capsys, monkeypatch):
    """No record, no figure (the skip line names the record lying beside the history);
    ``--downstream`` draws it, and so does an analysis that holds a downstream section
    (analyze_100k.py --downstream). The analysis is precomputed and the registry cut to two
    figures, for speed (tests/test_plots.py draws the others)."""
    import analyze_100k
    import visualize_results
    from zhbert.plots import render

    monkeypatch.setattr(render, "FIGURES", {k: render.FIGURES[k] for k in ("phases", "downstream")})
    history, record = run_dir
    plain, with_block = tmp_path / "a0.json", tmp_path / "a1.json"
    for out, extra in ((plain, []), (with_block, ["--downstream", str(record)])):
        with pytest.raises(SystemExit):
            run_cli(analyze_100k.main, ["--history", str(history), "--n-boot", "10",
                                        "--output", str(out), *extra])
    capsys.readouterr()
    for name, args, drawn in (("plain", ["--analysis", str(plain)], False),
                              ("flag", ["--analysis", str(plain), "--downstream", str(record)],
                               True),
                              ("section", ["--analysis", str(with_block)], True)):
        figs = tmp_path / name
        with pytest.raises(SystemExit) as exc:
            run_cli(visualize_results.main, ["--history", str(history), *args,
                                             "--out-dir", str(figs)])
        out = capsys.readouterr().out
        assert exc.value.code == 0 and (figs / "phases.png").exists()
        assert (str(figs / "downstream.png") in out.splitlines()) is drawn, name
        assert (figs / "downstream.png").exists() is drawn, name
        if not drawn:
            assert (f"skipped {figs / 'downstream.png'}: no downstream scores file was given "
                    f"(draw it with --downstream {record})") in out


def test_a_bad_record_is_one_line_before_any_output(run_dir, tmp_path, capsys):
    import analyze_100k
    import visualize_results

    history, _ = run_dir
    bad = _write_record(tmp_path, _entry(init="random"), name="bad.json")
    for main, extra in ((visualize_results.main, ["--out-dir", str(tmp_path / "figs")]),
                        (analyze_100k.main, ["--output", str(tmp_path / "a.json")])):
        with pytest.raises(SystemExit) as exc:
            run_cli(main, ["--history", str(history), "--downstream", str(bad), *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 2
        assert err.startswith(f"error: {bad}: records[0]: a 'random' init") and err.count("\n") == 1
    assert not (tmp_path / "figs").exists() and not (tmp_path / "a.json").exists()
