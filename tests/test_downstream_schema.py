"""RUN/downstream_scores.json: records checked, merged by key, grouped per step."""

from __future__ import annotations

import json

import pytest

from zhbert import downstream_schema as D
from zhbert.errors import UserError


def _rec(**kw):
    base = {"task": "ner", "step": 100, "init": "pretrained", "seed": 0, "split": "test",
            "metric": "entity_f1", "score": 0.7}
    return {**base, **kw}


def test_save_merge_and_group(tmp_path):
    assert D.load_scores(tmp_path) == []
    D.save_records(tmp_path, [_rec(), _rec(seed=1, score=0.8), _rec(step=0, init="random",
                                                                    score=0.5)])
    merged = D.save_records(tmp_path, [_rec(score=0.75, elapsed_s=3.5)])  # replaces seed 0
    assert len(merged) == 3 and D.load_scores(tmp_path) == merged
    assert D.by_step(merged, "ner") == {("pretrained", 100): [0.75, 0.8], ("random", 0): [0.5]}
    assert D.by_step(merged, "cws") == {}
    D.save_records(tmp_path, [_rec(budget="full", score=0.9)])  # another budget: another row
    assert D.by_step(D.load_scores(tmp_path), "ner", budget="full") == {("pretrained", 100): [0.9]}
    data = json.loads(D.scores_path(tmp_path).read_text(encoding="utf-8"))
    assert data["format_version"] == 1 and len(data["records"]) == 4


@pytest.mark.parametrize(("record", "message"), [
    ({k: v for k, v in _rec().items() if k != "seed"}, "a record has no 'seed'"),
    (_rec(colour="red"), "unknown record key 'colour'"),
    (_rec(step="100"), "'step' is '100', not int"),
    (_rec(score=True), "'score' is True, not int or float"),
    (_rec(init="warm"), "init 'warm' is not one of pretrained, random"),
    (_rec(score=float("nan")), "score nan is not a finite number"),
])
def test_bad_records_are_refused(tmp_path, record, message):
    with pytest.raises(UserError, match=message):
        D.save_records(tmp_path, [record])
    assert not D.scores_path(tmp_path).exists()  # nothing half-written


def test_a_foreign_file_is_refused(tmp_path):
    D.scores_path(tmp_path).write_text('{"records": 3}', encoding="utf-8")
    with pytest.raises(UserError, match="not a downstream scores file of format 1"):
        D.load_scores(tmp_path)
