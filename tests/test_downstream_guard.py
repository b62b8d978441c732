"""The leakage guard: a corpus holding task dev/test sentences drops them and counts them."""

from __future__ import annotations

import json

import pytest

from tests.helpers_scripts import load_script
from zhbert.corpus.prepare import PrepareOptions, collect_sentences, guard_enabled, heldout_keys
from zhbert.corpus.text import normalize_text, sentence_filter_reason, split_sentences
from zhbert.downstream.tasks import TASKS
from zhbert.errors import run_cli
from zhbert.taskdata import heldout


def _corpus_ready(texts, count):
    """The first ``count`` texts the pipeline keeps whole: one sentence passing the filters."""
    out = []
    for text in texts:
        pieces = split_sentences(normalize_text(text))
        if len(pieces) == 1 and sentence_filter_reason(pieces[0], 30, 100, 0.5) is None:
            out.append(text)
            if len(out) == count:
                break
    return out


@pytest.fixture(scope="module")
def held_and_train():
    held = [_corpus_ready((e.text for e in TASKS[t].load(s)), 1)[0]
            for t, s in (("ner", "test"), ("cws", "test"), ("sentiment", "dev"), ("ner", "dev"))]
    train = _corpus_ready((e.text for e in TASKS["ner"].load("train")), 40)
    return held, train


def test_prepare_drops_and_counts_heldout_sentences(tmp_path, capsys, held_and_train):
    held, train = held_and_train
    spaced = " ".join(held[0])  # spacing does not hide a sentence: the key ignores whitespace
    src = tmp_path / "corpus.txt"
    src.write_text("\n".join([*train[:20], *held, spaced, *train[20:]]) + "\n", encoding="utf-8")
    script = load_script("examples/prepare_dataset.py")
    out = tmp_path / "c"
    args = ["--source", "text", "--input", str(src), "--text-docs", "line", "--min-val-sentences",
            "5", "--min-char-freq", "1", "--out-dir", str(out), "--heldout-guard", "on"]
    with pytest.raises(SystemExit) as exit_:
        run_cli(script.main, args)
    assert exit_.value.code == 0
    stats = json.loads((out / "dataset_stats.json").read_text(encoding="utf-8"))
    guard = stats["heldout_guard"]
    assert guard["enabled"] and guard["dropped"] == len(held) + 1
    assert guard["heldout_sentences"] == len(heldout_keys()) > 20000
    assert stats["sources"]["corpus.txt"]["dropped"]["heldout"] == len(held) + 1
    assert stats["num_sentences"] == len(train)
    assert f"{len(held) + 1} dropped (guard on:" in capsys.readouterr().out


def test_guard_is_on_for_the_demo_only_and_can_be_switched(held_and_train):
    held, train = held_and_train
    assert guard_enabled("demo", PrepareOptions()) and not guard_enabled("text", PrepareOptions())
    assert guard_enabled("text", PrepareOptions(heldout_guard=True))
    assert not guard_enabled("demo", PrepareOptions(heldout_guard=False))
    docs = [("x", t) for t in [*train[:5], *held]]
    kept, per_source = collect_sentences(iter(docs), PrepareOptions(), progress=False)
    assert sum(map(len, kept)) == 5 + len(held) and per_source["x"]["dropped"]["heldout"] == 0
    kept, per_source = collect_sentences(iter(docs), PrepareOptions(), False, heldout_keys())
    assert sum(map(len, kept)) == 5 and per_source["x"]["dropped"]["heldout"] == len(held)


def test_heldout_texts_cover_every_task_dev_and_test():
    texts = heldout.heldout_texts()
    assert set(texts) == {"ner", "cws", "sentiment"}  # pos has the texts of cws
    assert len(texts["ner"]) == 10000 and len(texts["sentiment"]) == 1802 + 1673
    assert {e.text for e in TASKS["pos"].load("test")} <= set(texts["cws"])


def test_ngram_overlap_counts_exact_and_partial_matches():
    tests = ["新华社北京一月一日电记者报道。", "完全没有出现过的句子啊", "短"]
    corpus = ["新华社北京一月一日电记者报道。", "xx没有出现过的句xx"]
    r = heldout.ngram_overlap(tests, corpus, n=6)
    assert (r["exact"], r["with_shared_ngram"], r["test_sentences"]) == (1, 2, 3)
    assert r["covered_char_share"] == pytest.approx((15 + 7) / (15 + 11 + 1))


def test_overlap_script_on_a_demo_slice():
    script = load_script("examples/downstream_overlap.py")
    record = script.measure(13, max_documents=300)
    assert set(record["tasks"]) == {"ner", "cws", "sentiment"}
    for by_guard in record["tasks"].values():
        assert by_guard["guard_on"]["exact"] == 0  # the guard removes every exact match
        assert by_guard["guard_on"]["with_shared_ngram"] <= by_guard["guard_off"]["with_shared_ngram"]
    corpus = record["corpus"]
    assert corpus["guard_off"]["heldout_dropped"] == 0
    assert corpus["guard_on"]["sentences"] <= corpus["guard_off"]["sentences"]
    assert "| ner | 5,000 | on | 0 |" in script.format_table(record)
