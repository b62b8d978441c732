"""The `make demo` path end to end, with a reduced budget (smoke preset, a slice of the corpus)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"training_curves.png", "correlation_analysis.png", "loss_analysis.png",
           "learning_curve_fit.png", "phases.png"}


def _run_demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "examples/run_demo.py", "--preset", "smoke", "--max-documents", "400",
           "--corpus", str(tmp_path / "corpus"), "--run-dir", str(tmp_path / "run"),
           "--results", str(tmp_path / "results"), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_demo_runs_end_to_end_then_reuses_its_outputs(tmp_path):
    first = _run_demo(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    results = tmp_path / "results"
    assert {p.name for p in results.glob("*.png")} >= FIGURES
    history = json.loads((results / "training_history.json").read_text())
    assert len(history["eval_steps"]) >= 2 and history["steps"][-1] > 0
    analysis = json.loads((results / "analysis_result.json").read_text())
    assert analysis["data_points"] == analysis["series"]["n"] > 0
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    summary = json.loads((results / "demo_run.json").read_text())
    assert set(summary["steps_s"]) == {"prepare", "train", "analyze", "figures", "fill-mask"}
    assert "今天天气很" in first.stdout  # the quick start printed its sentences

    # A second run skips the finished preparation and training.
    second = _run_demo(tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reusing" in second.stdout
    summary2 = json.loads((results / "demo_run.json").read_text())
    assert "train" not in summary2["steps_s"] and "prepare" not in summary2["steps_s"]
