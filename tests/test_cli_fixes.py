"""Commands that did not work as documented: several files after one --input, distinct default
labels for --compare, and config validation after every --set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zhbert.analysis.synthetic import make_history
from zhbert.config import build_config
from zhbert.errors import UserError
from zhbert.io_utils import run_labels

ROOT = Path(__file__).resolve().parents[1]


def test_run_labels_use_the_run_directory_and_stay_distinct():
    assert run_labels(["runs/a/training_history.json", "runs/b/training_history.json"]) == ["a", "b"]
    assert run_labels(["h100k.json", "x/h50k.json"]) == ["h100k", "h50k"]
    assert run_labels(["a/h.json", "b/h.json"]) == ["run 1", "run 2"]


def test_compare_default_labels_name_the_runs(tmp_path):
    paths = []
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "training_history.json"
        path.write_text(json.dumps(make_history(n=60, seed=seed)))
        paths.append(str(path))
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "analyze_100k.py", "--history", paths[0], "--compare",
                           paths[1], "--n-boot", "10", "--output", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    labels = [run["label"] for run in json.loads(out.read_text())["comparison"]["runs"]]
    assert labels == ["a", "b"]


@pytest.mark.parametrize("override, needle", [
    ("model.position_init=foo", "position_init"),
    ("model.num_heads=3", "num_heads"),
])
def test_every_override_is_validated(override, needle):
    with pytest.raises(UserError, match=needle):
        build_config("smoke", None, [override])


def test_trend_statement_says_what_the_autocorrelation_correction_did():
    import numpy as np

    from zhbert.analysis.trend import trend_analysis

    steps = np.arange(1, 41) * 50.0
    smooth = 0.15 - 0.1 / np.sqrt(steps / 50)
    wiggle = np.random.default_rng(0).normal(0, 0.002, 40)
    for acc in (smooth + wiggle, smooth + 0.02 * np.sin(steps / 120)):
        t = trend_analysis(steps, acc, r=0.8, p_value=0.001)
        same = t["modified_mann_kendall"]["var_s"] == t["mann_kendall"]["var_s"]
        assert ("left the variance unchanged" in t["statement"]) is same
        assert ("scaled the variance of S" in t["statement"]) is not same
    from zhbert.analysis.trend import _trend_sentence

    plain = {"trend": "increasing", "p_value": 1e-9, "var_s": 949.0}
    assert "left the variance unchanged" in _trend_sentence(plain, dict(plain))
    scaled = _trend_sentence(plain, {**plain, "var_s": 1898.0, "p_value": 1e-5})
    assert "scaled the variance of S by 2.00" in scaled and "still" not in scaled


def test_model_flops_count_the_mlm_head_only_at_masked_positions():
    import torch

    from zhbert.bench import models as bench
    from zhbert.model_config import BertConfig

    cfg = BertConfig(vocab_size=1000, hidden_size=64, num_layers=2, num_heads=2,
                     intermediate_size=128, tie_word_embeddings=False)
    lengths = torch.tensor([10, 6])
    base = bench.model_flops(cfg, 5000, lengths, n_masked=0)
    assert base == 6 * 5000 * 16 + 12 * 2 * 64 * (100 + 36)
    head = 64 * 64 + 64 * 1000
    assert bench.model_flops(cfg, 5000, lengths, n_masked=3) - base == 6 * head * 3
