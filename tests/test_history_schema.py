"""zhbert.history_schema owns the history's keys: the writer, the analysis and the plots agree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zhbert import history_schema as H
from zhbert.analysis import load_history, select_series
from zhbert.plots.common import eval_col, train_steps
from zhbert.training.history import HistoryWriter


def _train_row(step: int, **over) -> dict:
    row = {k: 0.5 for k in H.keys("train", nsp=False)}
    row[H.STEPS] = step
    row.update(over)
    return row


def _eval_row(step: int, acc: float) -> dict:
    return {H.EVAL_STEPS: step, H.EVAL_MLM_ACC: acc, H.EVAL_LOSS: 3.0, H.EVAL_STDERR: 0.01,
            **dict.fromkeys(H.FORECAST_KEYS)}


def test_series_keys_follow_the_prefix_rule():
    for c in H.COLUMNS:
        assert H.series_of(c.key) == c.series, c.key
    assert H.NSP_ACC not in H.keys("train", nsp=False) and H.NSP_ACC in H.keys("train", nsp=True)
    assert set(H.keys("train", nsp=True)) >= H.ORIGINAL_KEYS
    assert len({c.key for c in H.COLUMNS}) == len(H.COLUMNS)


def test_writer_refuses_unregistered_and_missing_keys(tmp_path):
    w = HistoryWriter(tmp_path / H.HISTORY_NAME, nsp=False)
    with pytest.raises(ValueError, match="unregistered.*'acc'"):
        w.add_eval({**_eval_row(1, 0.5), "acc": 0.5})
    row = _train_row(1)
    del row[H.GRAD_NORM]
    with pytest.raises(ValueError, match="missing.*grad_norm"):
        w.add_train(row)
    w.data["meta"]["not_in_schema"] = 1
    with pytest.raises(ValueError, match="not_in_schema"):
        w.save()


def test_written_file_is_strict_json_and_reads_back_with_the_same_names(tmp_path):
    path = tmp_path / H.HISTORY_NAME
    w = HistoryWriter(path, nsp=False, meta={"seed": 1})
    for i in range(1, 13):
        w.add_train(_train_row(i, **{H.MLM_ACC: 0.1 + 0.01 * i,
                                     H.GRAD_NORM: float("nan") if i == 3 else 1.0}))
        w.add_eval(_eval_row(i, 0.2 + 0.01 * i))
    w.save()
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the history"))
    assert json.loads(text)[H.GRAD_NORM][2] is None
    h = load_history(path)
    assert set(h.eval.columns) == set(H.keys("eval", nsp=False))
    assert set(h.train.columns) == set(H.keys("train", nsp=False))
    s = select_series(h, "eval")
    assert s.kind == "eval" and s.acc[0] == pytest.approx(0.21) and s.steps[-1] == 12
    assert np.allclose(eval_col(h, H.EVAL_MLM_ACC), 0.2 + 0.01 * np.arange(1, 13))
    assert train_steps(h)[-1] == 12


def test_original_format_still_read(tmp_path):
    steps = list(range(100, 1300, 100))
    data = {H.STEPS: steps, H.MLM_ACC: [0.1 + 0.01 * i for i in range(12)],
            H.NSP_ACC: [0.9] * 12, H.LOSS: [3.0] * 12, H.LR: [1e-4] * 12}
    path = tmp_path / "orig.json"
    path.write_text(json.dumps(data))
    h = load_history(path)
    assert h.format == "original" and h.eval is None
    assert select_series(h).kind == "train" and list(h.train[H.STEPS]) == steps

