"""Count-table baselines: hand-checked counts, the masked-neighbour rule, the command's JSON."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zhbert.baselines as B
from zhbert.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
V = 12
# A hand-countable train stream over ids 5..11 (an [UNK] in the middle):
#   5 6 7 | 5 6 8 | 5 9 7 | 10 6 7 | 1 | 5 6 7
STREAM = np.array([5, 6, 7, 5, 6, 8, 5, 9, 7, 10, 6, 7, UNK, 5, 6, 7])


def test_docstring_examples():
    assert doctest.testmod(B).failed == 0


def test_counts_by_hand():
    t = B.count_tables(STREAM, SPECIAL, V)
    # targets: 5 x4, 6 x4, 7 x4, 8, 9, 10 (the [UNK] is not a target); ties -> lowest id
    assert t.unigram == 5 and t.tokens == len(STREAM)
    left = dict(zip(t.left.keys.tolist(), t.left.pred.tolist(), strict=True))
    # after 5: 6,6,9,6 -> 6 (3/4); after 6: 7,8,7,7 -> 7; after 7: 5,10 -> 5 (tie, lower id);
    # after 8: 5; after 9: 7; after 10: 6; nothing is counted after [UNK]
    assert left == {5: 6, 6: 7, 7: 5, 8: 5, 9: 7, 10: 6}
    assert dict(zip(t.left.keys.tolist(), t.left.prob.tolist(), strict=True))[5] == 0.75
    right = dict(zip(t.right.keys.tolist(), t.right.pred.tolist(), strict=True))
    # before 7: 6,9,6,6 -> 6; before 6: 5,5,10,5 -> 5; before 5: 7,8 -> 7; before 8: 6;
    # before 9: 5; before 10: 7; the 7 before [UNK] has no right context
    assert right == {5: 7, 6: 5, 7: 6, 8: 6, 9: 5, 10: 7}
    gap = {(k // V, k % V): p for k, p in zip(t.gap.keys.tolist(), t.gap.pred.tolist(),
                                              strict=True)}
    # (5, 7) surrounds 6 twice and 9 once -> 6; (6, 5) surrounds 7 and 8 -> 7
    assert gap[(5, 7)] == 6 and gap[(6, 5)] == 7 and gap[(10, 7)] == 6
    assert (7, 5) not in gap  # 7 [UNK] 5: the [UNK] context is unknown


def test_sentence_starts_cut_contexts():
    # two sentences "5 6" and "7 8": without the cut, 6 -> 7 would be a left context
    whole = B.count_tables(np.array([5, 6, 7, 8]), SPECIAL, V)
    cut = B.count_tables(np.array([5, 6, 7, 8]), SPECIAL, V, sentence_starts=np.array([2]))
    assert 6 in whole.left.keys.tolist() and 6 not in cut.left.keys.tolist()
    assert 7 in whole.right.keys.tolist() and 7 not in cut.right.keys.tolist()


def test_masked_neighbour_is_unknown_and_backs_off():
    t = B.count_tables(STREAM, SPECIAL, V)
    # held-out row: [CLS] 5 [MASK] 7 [SEP]; both 5 and the masked 6 are scored
    ids = np.array([[CLS, 5, MASK, 7, SEP]])
    labels = np.array([[-100, 5, 6, -100, -100]])
    left, right = B.neighbours(ids, SPECIAL)
    at = labels != -100
    assert left[at].tolist() == [B.UNKNOWN, 5] and right[at].tolist() == [B.UNKNOWN, 7]
    p = B.predict(t, left[at], right[at])
    # position of 5: both neighbours unknown ([CLS] and [MASK]) -> every table says the unigram
    assert [p[k][0] for k in B.BASELINES] == [5, 5, 5, 5]
    # position of the masked 6: left 5 -> 6, right 7 -> 6, gap (5, 7) -> 6
    assert [p[k][1] for k in B.BASELINES] == [5, 6, 6, 6]
    r = B.score(t, [(ids, labels)], SPECIAL)
    assert r["n_masked"] == 2
    assert r["correct"] == {"unigram": 1, "left_bigram": 2, "right_bigram": 2, "gap_trigram": 2}
    # the same row with the true 5 visible to the left of the masked 6 vs masked
    masked_left = np.array([[CLS, MASK, MASK, 7, SEP]])
    r2 = B.score(t, [(masked_left, labels)], SPECIAL)
    assert r2["correct"]["left_bigram"] == 1  # the 6's left neighbour is now [MASK]: unigram 5
    assert r2["correct"]["gap_trigram"] == 2  # backs off to the right bigram: 7 -> 6


def test_gap_backs_off_to_the_more_confident_bigram():
    t = B.count_tables(STREAM, SPECIAL, V)
    # no gap context (8, 10): left 8 -> 5 (1/1) and right 10 -> 7 (1/1) tie -> left, 5;
    # no gap context (7, 7): left 7 -> 5 (1/2) loses to right 7 -> 6 (3/4) -> 6;
    # 11 is unseen on both sides -> the unigram, 5
    left, right = np.array([8, 7, 11]), np.array([10, 7, 11])
    p = B.predict(t, left, right)
    assert p["gap_trigram"].tolist() == [5, 6, 5]


def test_score_refuses_an_empty_held_out_set():
    t = B.count_tables(STREAM, SPECIAL, V)
    with pytest.raises(UserError, match="no masked positions"):
        B.score(t, [(np.array([[CLS, 5, SEP]]), np.array([[-100, -100, -100]]))], SPECIAL)
    with pytest.raises(UserError, match="no non-special"):
        B.count_tables(np.array([UNK, PAD]), SPECIAL, V)


def test_read_baselines_accepts_only_valid_fractions():
    assert B.read_baselines({"baselines": {"acc": {"unigram": 0.1, "left_bigram": 2.0,
                                                   "gap_trigram": None}}}) == {"unigram": 0.1}
    assert B.read_baselines({"baselines": {"acc": {"unigram": True}}}) is None
    assert B.read_baselines({"baselines": [1, 2]}) is None and B.read_baselines(None) is None


def test_corpus_baselines_use_the_trainers_held_out_set(tiny_corpus):
    from zhbert.config import build_config
    from zhbert.corpus.binary import load_corpus_info, load_split
    from zhbert.data import build_eval_set

    cfg = build_config("smoke", None, [f"data.corpus_dir={tiny_corpus}"])
    info = load_corpus_info(tiny_corpus)
    evals = build_eval_set(load_split(tiny_corpus, "val"), info, cfg.data)
    block = B.corpus_baselines(load_split(tiny_corpus, "train"), info, evals, "packed")
    assert block["n_masked"] == sum(int((b.mlm_labels != -100).sum()) for b in evals)
    acc = block["acc"]
    assert list(acc) == list(B.BASELINES)
    assert 0 < acc["unigram"] < acc["left_bigram"] and acc["unigram"] < acc["gap_trigram"] < 1
    assert block["correct"]["unigram"] == round(acc["unigram"] * block["n_masked"])
    true = B.corpus_baselines(load_split(tiny_corpus, "train"), info, evals, "packed",
                              true_neighbours=True)
    assert true["n_masked"] == block["n_masked"] and true["rule"].startswith("true")
    assert true["unknown_neighbour_share"] < block["unknown_neighbour_share"]
    capped = B.corpus_baselines(load_split(tiny_corpus, "train"), info, evals, "pairs", 500)
    assert capped["train_tokens_counted"] == 500 < capped["train_tokens_total"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "examples" / "baselines.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_command_prints_the_table_and_writes_the_json(tiny_corpus, tmp_path):
    out = tmp_path / "b.json"
    res = _cli("--corpus", str(tiny_corpus), "--preset", "smoke", "--json", str(out))
    assert res.returncode == 0, res.stderr
    block = json.loads(out.read_text())
    assert B.read_baselines({B.BASELINES_KEY: block}) == block["acc"]
    assert block["held_out"]["preset"] == "smoke" and block["held_out"]["seq_len"] == 32
    for name in B.BASELINES:
        assert f"{name:<14}{100 * block['acc'][name]:>13.2f}%" in res.stdout
    bad = _cli("--corpus", str(tmp_path / "missing"), "--json", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.json").exists()


def test_trainer_stores_the_same_block_in_the_history_meta(tiny_corpus, tmp_path):
    import main_train
    from zhbert.config import build_config
    from zhbert.corpus.binary import load_corpus_info, load_split
    from zhbert.data import build_eval_set

    overrides = [f"data.corpus_dir={tiny_corpus}", "data.format=pairs", "run.max_steps=2",
                 "run.eval_interval=2", "run.export_final=false"]
    args = ["--preset", "smoke", "--run-dir", str(tmp_path / "run")]
    assert main_train.main(args + [a for o in overrides for a in ("--set", o)]) == 0
    meta = json.loads((tmp_path / "run" / "training_history.json").read_text())["meta"]
    cfg = build_config("smoke", None, overrides)
    info = load_corpus_info(tiny_corpus)
    evals = build_eval_set(load_split(tiny_corpus, "val"), info, cfg.data)
    expected = B.corpus_baselines(load_split(tiny_corpus, "train"), info, evals, "pairs")
    assert meta[B.BASELINES_KEY] == json.loads(json.dumps(expected))
    assert meta[B.BASELINES_KEY]["n_masked"] == meta["eval"]["masked_tokens"]
    assert "count-table baselines on the held-out set: unigram" in (
        tmp_path / "run" / "train.log").read_text()


def _history_with_baselines(tmp_path: Path, acc: dict) -> Path:
    from zhbert.analysis.synthetic import make_history

    h = make_history(n=60, last_step=3000, eval_every=3)
    h["meta"][B.BASELINES_KEY] = {"version": 1, "acc": acc, "n_masked": 10366}
    path = tmp_path / "training_history.json"
    path.write_text(json.dumps(h))
    return path


def test_analysis_json_and_report_carry_the_baselines(tmp_path):
    acc = {"unigram": 0.05, "left_bigram": 0.16, "right_bigram": 0.15, "gap_trigram": 0.9}
    path = _history_with_baselines(tmp_path, acc)
    out = tmp_path / "analysis.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(ROOT / "analyze_100k.py"), "--history", str(path),
                          "--n-boot", "0", "--output", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    final = json.loads(path.read_text())["eval_mlm_acc"][-1]
    b = r[B.BASELINES_KEY]
    assert b["acc"] == acc and b["n_masked"] == 10366 and b["final_eval_acc"] == final
    assert b["final_minus"] == pytest.approx({k: final - v for k, v in acc.items()})
    assert b["beaten"] == ["unigram", "left_bigram", "right_bigram"]  # not 90 %
    assert ("count-table baselines (held-out): unigram 5.00%, left bigram 16.00%, right bigram "
            "15.00%, gap trigram 90.00%; the final held-out accuracy beats 3 of 4") in res.stdout


def test_analysis_without_baselines_or_on_training_batches(tmp_path):
    from zhbert.analysis import analyze, load_history
    from zhbert.analysis.synthetic import make_history

    path = tmp_path / "plain.json"
    path.write_text(json.dumps(make_history(n=60, last_step=3000, eval_every=3)))
    assert B.BASELINES_KEY not in analyze(load_history(path), n_boot=0)
    with_b = _history_with_baselines(tmp_path, {"unigram": 0.05})
    r = analyze(load_history(with_b), series="train", n_boot=0)
    # the train series is not comparable with held-out baselines: no final difference
    assert r[B.BASELINES_KEY] == {"acc": {"unigram": 0.05}, "n_masked": 10366}


def test_baseline_lines_are_drawn_and_labelled():
    from matplotlib.figure import Figure

    from zhbert.plots.common import baseline_lines

    acc = {"unigram": 0.05, "left_bigram": 0.163, "right_bigram": 0.157, "gap_trigram": 0.336}
    ax = Figure().add_subplot()
    ax.plot([0, 1000], [0.02, 0.15])
    lines = baseline_lines(ax, None, {B.BASELINES_KEY: {"acc": acc}}, cjk=False)
    assert sorted(ln.get_ydata()[0] for ln in lines) == sorted(acc.values())
    lo, hi = ax.get_ylim()
    assert lo < 0.02 and hi > 0.336  # the y range grew to show every line
    labels = {t.get_text(): t.get_va() for t in ax.texts}
    assert labels == {"unigram 5.0%": "bottom", "right bigram 15.7%": "top",
                      "left bigram 16.3%": "bottom", "gap trigram 33.6%": "bottom"}
    empty = Figure().add_subplot()
    assert baseline_lines(empty, None, {}, cjk=False) == [] and not empty.lines


def test_every_accuracy_panel_draws_the_baselines(tmp_path, monkeypatch):
    """Each figure with an accuracy panel calls the shared helper once, with the history's
    baselines (the analysis JSON's take precedence); the loss figure draws none."""
    from helpers_plots import write_history, zhbert_history

    from zhbert.analysis import analyze, load_history
    from zhbert.plots import common, figures_compare, figures_fits, figures_training, render_all

    acc = {"unigram": 0.05, "left_bigram": 0.16, "right_bigram": 0.15, "gap_trigram": 0.34}
    data = zhbert_history(n=60, n_eval=12)
    data["meta"][B.BASELINES_KEY] = {"acc": acc}
    history = load_history(write_history(tmp_path, "h.json", data))
    drawn: list[list[float]] = []

    def spy(ax, hist, analysis, cjk):
        lines = common.baseline_lines(ax, hist, analysis, cjk)
        drawn.append(sorted(float(ln.get_ydata()[0]) for ln in lines))
        return lines

    for module in (figures_training, figures_fits, figures_compare):
        monkeypatch.setattr(module, "baseline_lines", spy)
    analysis = analyze(history, n_boot=20)
    assert analysis[B.BASELINES_KEY]["acc"] == acc
    paths = render_all(history, analysis, tmp_path / "figs", compare=[("same", history)])
    assert len(paths) == 6  # the registered figures (no backtest analysed) + the comparison
    # training_curves, correlation_analysis, learning_curve_fit, phases, comparison
    assert drawn == [sorted(acc.values())] * 5
    drawn.clear()
    history.meta.clear()  # an older history without baselines: nothing drawn
    render_all(history, analyze(history, n_boot=20), tmp_path / "plain")
    assert drawn == [[]] * 4


def test_readme_results_table_has_a_baselines_row_when_the_analysis_has_them(tmp_path):
    import shutil

    from tests.helpers_scripts import load_script

    run_demo = load_script("examples/run_demo.py")
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results", results)
    path = results / "analysis_result.json"
    analysis = json.loads(path.read_text())
    analysis.pop(B.BASELINES_KEY, None)
    path.write_text(json.dumps(analysis))
    assert "count-table baselines" not in run_demo.results_table(results)
    analysis[B.BASELINES_KEY] = {"acc": {"unigram": 0.0487, "left_bigram": 0.1631,
                                         "right_bigram": 0.1573, "gap_trigram": 0.3356}}
    path.write_text(json.dumps(analysis))
    rows = run_demo.results_table(results).splitlines()
    assert rows[4] == ("| count-table baselines on the same masks: unigram / left bigram / right "
                       "bigram / gap trigram (`examples/baselines.py`) | 4.87% / 16.31% / 15.73% "
                       "/ 33.56% |")
