"""benchmarks/compare_runs.py: identical runs compare identical, a changed seed does not."""

from __future__ import annotations

import json

import pytest

import main_train
from tests.helpers_scripts import load_script
from zhbert.errors import UserError


def _run(corpus, run_dir, *extra):
    assert main_train.main(["--preset", "smoke", "--set", f"data.corpus_dir={corpus}",
                            "--set", "run.max_steps=4", "--set", "run.save_interval=2",
                            "--set", "run.export_final=false", *extra,
                            "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_compare_runs(tiny_corpus, tmp_path, capsys):
    bench = load_script("benchmarks/compare_runs.py")
    a = _run(tiny_corpus, tmp_path / "a")
    b = _run(tiny_corpus, tmp_path / "b")
    c = _run(tiny_corpus, tmp_path / "c", "--set", "run.seed=7")
    out = tmp_path / "cmp.json"
    assert bench.main([str(a), str(b), "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["step"] == 4 and rec["identical"] and rec["max_abs_weight_diff"] == 0.0
    assert rec["max_abs_loss_diff"] == 0.0 and "weights identical" in capsys.readouterr().out
    other = bench.compare(a, c)
    assert not other["identical"] and other["max_abs_weight_diff"] > 0
    assert other["tensors_differing"] > 0 and other["max_abs_loss_diff"] > 0
    with pytest.raises(UserError, match="no checkpoint step in common"):
        bench.compare(a, tmp_path / "missing")
