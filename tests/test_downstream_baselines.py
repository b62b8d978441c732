"""The downstream baselines on tiny subsamples, and the docs' tables of the committed records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers_scripts import load_script
from zhbert.downstream import baselines as B
from zhbert.downstream.tasks import TASKS, format_stats, split_stats
from zhbert.errors import run_cli
from zhbert.taskdata.readers import TokenExample

ROOT = Path(__file__).resolve().parents[1]


def _score(task, name, n_train, n_test):
    t = TASKS[task]
    predict = B.BASELINES[task][name](t.load("train", n_train), t.load("dev", 200))
    test = t.load("test", n_test, seed=1)
    return t.score(t.gold(test), predict(test))["score"]


@pytest.mark.parametrize(("task", "name", "n_train", "low", "high"), [
    ("ner", "crf", 200, 0.15, 0.8),
    ("ner", "dict_longest_match", 2000, 0.3, 0.8),
    ("cws", "jieba", 1, 0.7, 0.9),
    ("cws", "forward_max_match", 2000, 0.75, 0.95),
    ("sentiment", "tfidf_logreg", 400, 0.6, 0.95),
])
def test_each_baseline_scores_sanely_on_a_subsample(task, name, n_train, low, high):
    assert low < _score(task, name, n_train, 200) < high


def test_matchers_on_hand_made_cases():
    train = [TokenExample(tuple("我爱北京天安门"), ("S", "S", "B", "E", "B", "M", "E"))]
    fmm = B.fit_forward_max_match(train)
    assert fmm([TokenExample(tuple("北京天安门好"), ("S",) * 6)]) == [["B", "E", "B", "M", "E", "S"]]
    ner = [TokenExample(tuple("去北京"), ("O", "B-LOC", "E-LOC")),
           TokenExample(tuple("王府"), ("B-PER", "E-PER"))]
    predict = B.fit_entity_dictionary(ner)
    assert predict([TokenExample(tuple("北京王府井"), ("O",) * 5)]) == [
        ["B-LOC", "E-LOC", "B-PER", "E-PER", "O"]]
    crf_feats = B.char_features("中国", 1)
    assert crf_feats["c0"] == "国" and crf_feats["c1"] == "</s>" and crf_feats["b-1"] == "中国"


def test_script_refuses_bad_limits_and_names(capsys):
    script = load_script("examples/downstream_baselines.py")
    for args, msg in ((["--train-limit", "0"], "--train-limit must be >= 1"),
                      (["--baseline", "svm"], "unknown baseline 'svm'")):
        with pytest.raises(SystemExit) as exit_:
            run_cli(script.main, args)
        assert exit_.value.code == 2 and msg in capsys.readouterr().err


def _assert_table_in(doc_name: str, table: str) -> None:
    doc = (ROOT / "docs" / doc_name).read_text(encoding="utf-8")
    lines = [line.strip() for line in doc.splitlines()]
    want = [line.strip() for line in table.splitlines()]
    starts = [i for i, line in enumerate(lines) if line == want[0]]
    assert any(lines[i:i + len(want)] == want for i in starts), f"table not in docs/{doc_name}"


def test_downstream_doc_holds_the_tables_of_the_committed_records():
    baselines = json.loads((ROOT / "results/downstream/baselines.json").read_text(encoding="utf-8"))
    _assert_table_in("DOWNSTREAM.md", B.format_table(baselines))
    overlap = json.loads((ROOT / "results/downstream/overlap.json").read_text(encoding="utf-8"))
    _assert_table_in("DOWNSTREAM.md", load_script("examples/downstream_overlap.py")
                     .format_table(overlap))
    _assert_table_in("DOWNSTREAM.md", format_stats([split_stats(t) for t in TASKS.values()]))
