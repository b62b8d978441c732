"""run.precision=auto by measurement: bf16 on a CPU only where it is native and measured faster;
the choice and its reason in the log and meta; a warning for bf16 asked for where it is emulated."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import main_train
from zhbert.config import build_config
from zhbert.training import precision as P
from zhbert.training.setup import resolve_precision

CPU = torch.device("cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mock(monkeypatch, native: bool, speedup: float):
    shapes = []
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: native)
    monkeypatch.setattr(P, "probe_bf16_speedup",
                        lambda *shape, **kw: shapes.append(shape) or speedup)
    return shapes


def test_demo_preset_picks_fp32_on_a_cpu_without_native_bf16(monkeypatch):
    shapes = _mock(monkeypatch, native=False, speedup=0.02)
    choice = resolve_precision(build_config("demo"), CPU)
    assert choice.precision == "fp32" and choice.requested == "auto"
    assert "without native bf16" in choice.reason and choice.warning is None
    assert shapes == []  # no probe is needed to refuse emulated bf16


@pytest.mark.parametrize("speedup, expected", [(3.0, "bf16"), (1.2, "bf16"), (1.05, "fp32"),
                                               (0.5, "fp32")])
def test_native_bf16_is_used_only_when_the_probe_finds_it_faster(monkeypatch, speedup, expected):
    shapes = _mock(monkeypatch, native=True, speedup=speedup)
    cfg = build_config("demo")
    choice = resolve_precision(cfg, CPU)
    assert choice.precision == expected and choice.bf16_speedup == speedup
    assert f"{speedup:.2f}x" in choice.reason
    # the probe is the demo's FFN input projection (GeGLU: 2 x 640 columns), at most 1024 rows
    assert shapes == [(1024, 256, 1280)]
    assert choice.record()["bf16_speedup"] == speedup


def test_explicit_bf16_where_emulated_runs_with_one_warning(monkeypatch):
    _mock(monkeypatch, native=False, speedup=0.025)
    choice = resolve_precision(build_config("demo", overrides=["run.precision=bf16"]), CPU)
    assert choice.precision == "bf16"
    assert "40.0x slower" in choice.warning and "\n" not in choice.warning
    assert choice.record()["warning"] == choice.warning


def test_explicit_fp32_and_fp16_need_no_probe(monkeypatch):
    shapes = _mock(monkeypatch, native=True, speedup=5.0)
    for p in ("fp32", "fp16"):
        assert resolve_precision(build_config("demo", overrides=[f"run.precision={p}"]),
                                 CPU).precision == p
    assert shapes == []


def test_the_real_probe_is_quick_and_positive():
    import time

    t = time.perf_counter()
    ratio = P.probe_bf16_speedup(256, 64, 128)
    assert ratio > 0 and time.perf_counter() - t < 5


def test_reproduced_cpu_without_bf16_resolves_to_fp32():
    # the two variables hide native bf16 on a CPU that has it (and change nothing elsewhere)
    code = ("import torch; from zhbert.config import build_config; "
            "from zhbert.training.setup import resolve_precision; "
            "from zhbert.training.precision import cpu_native_bf16; "
            "c = resolve_precision(build_config('demo'), torch.device('cpu')); "
            "print(cpu_native_bf16(), c.precision)")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["False", "fp32"]


def test_training_records_the_choice_in_meta_and_log(tiny_corpus, tmp_path, monkeypatch, capsys):
    _mock(monkeypatch, native=False, speedup=0.03)
    run_dir = tmp_path / "run"
    assert main_train.main(["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
                            "--set", "run.precision=bf16", "--set", "run.max_steps=2",
                            "--set", "run.export_final=false", "--run-dir", str(run_dir)]) == 0
    meta = json.loads((run_dir / "training_history.json").read_text())["meta"]
    assert meta["precision"] == "bf16"
    assert meta["precision_choice"]["requested"] == "bf16"
    assert "slower than fp32" in meta["precision_choice"]["warning"]
    log = (run_dir / "train.log").read_text()
    assert "precision bf16: asked for" in log and log.count("warning: run.precision=bf16") == 1
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: False)
    run2 = tmp_path / "run2"
    assert main_train.main(["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
                            "--set", "run.precision=auto", "--set", "run.max_steps=2",
                            "--set", "run.export_final=false", "--run-dir", str(run2)]) == 0
    meta = json.loads((run2 / "training_history.json").read_text())["meta"]
    assert meta["precision"] == "fp32" and "without native bf16" in meta["precision_choice"][
        "reason"]
