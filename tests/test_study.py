"""Tests for examples/run_study.py (the recipe study) at smoke scale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers_scripts import load_script
from zhbert.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "run_study.py"


def _module():
    return load_script("examples/run_study.py")


def test_study_trains_both_arms_and_writes_its_table(tmp_path, tiny_corpus):
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), "--corpus", str(tiny_corpus), "--runs",
           str(tmp_path / "runs"), "--out-dir", str(out), "--preset", "smoke",
           "--set", "run.eval_interval=2", "--set", "optim.lr=5e-3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = json.loads((out / "study.json").read_text(encoding="utf-8"))
    assert set(study["arms"]) == {"original", "modern"}
    assert study["arms"]["original"]["arch"] == "bert" and study["arms"]["modern"]["arch"] == "modern"
    # shared overrides come last (here a higher lr, so that 20 steps learn something)
    assert study["arms"]["original"]["lr"] == study["arms"]["modern"]["lr"] == 5e-3
    assert study["arms"]["original"]["mask_rate"] == 0.15
    assert study["arms"]["original"]["tokens_seen"] == study["arms"]["modern"]["tokens_seen"]
    hist = json.loads((out / "history_original.json").read_text(encoding="utf-8"))
    assert hist["meta"]["config"]["optim"]["warmup_steps"] == 1  # 2 % of 20 steps, at least 1
    assert "baselines" in study and 0 < study["baselines"]["acc"]["gap_trigram"] < 1
    assert (out / "study_analysis.json").is_file() and list(out.glob("*.png"))
    assert json.loads((out / "study_analysis.json").read_text())["backtest"]["rows"]
    table = _module().study_table(study)
    assert "| final held-out MLM accuracy |" in table and "gap trigram" in table
    # a second call reuses both finished runs
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0 and again.stdout.count("reusing finished run") == 2
    second = json.loads((out / "study.json").read_text(encoding="utf-8"))
    assert study["reused"] == [] and sorted(second["reused"]) == ["modern", "original"]
    # reused arms count their recorded training time: total_s stays the study's cost
    trained = sum(a["train_s"] for a in second["arms"].values())
    assert abs(second["total_s"] - second["session_s"] - trained) <= 0.11 and second["session_s"] > 0


def test_steps_to_reach_and_bad_corpus(tmp_path):
    m = _module()
    assert m.steps_to_reach([10, 20], [0.1, 0.2], 0.3) is None
    assert m.steps_to_reach([10, 20], [0.1, 0.2], 0.2) == 20
    bad = tmp_path / "file.txt"
    bad.write_text("x")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--corpus", str(bad), "--runs",
                           str(tmp_path / "r"), "--preset", "smoke"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_readme_study_table_matches_committed_study():
    """README's study block is exactly study_table() of the committed results/study/study.json."""
    study_json = ROOT / "results" / "study" / "study.json"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = _module()
    assert m.README_START in readme and m.README_END in readme
    if not study_json.exists():  # before the first `make study-reference`
        return
    block = readme.split(m.README_START, 1)[1].split(m.README_END, 1)[0].strip()
    assert block == m.study_table(json.loads(study_json.read_text(encoding="utf-8")))


def test_reference_study_checks_the_arms_before_writing(tmp_path, monkeypatch):
    """An --out-dir under results/ counts as reference results: the work tree is checked before
    training and every arm's history before anything is written there."""
    study = _module()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dataset_stats.json").write_text("{}")
    events = []

    def fake_arm(arm, args):
        events.append(("train", arm))
        path = tmp_path / arm / "training_history.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"meta": {"git_commit": "abc", "git_dirty": True}}))
        return path

    def refuse(metas, allow_dirty, what):
        events.append(("check", sorted(metas)))
        if metas:
            raise UserError("refused")

    monkeypatch.setattr(study, "train_arm", fake_arm)
    monkeypatch.setattr(study, "check_clean", refuse)
    out = study.ROOT / "results" / "study"
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(UserError, match="refused"):
        study.main(["--corpus", str(corpus), "--runs", str(tmp_path / "runs"),
                    "--out-dir", str(out)])
    assert events == [("check", []), ("train", "original"), ("train", "modern"),
                      ("check", ["modern arm", "original arm"])]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
