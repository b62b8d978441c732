"""The downstream study and headline drivers (studies/downstream_study.py,
studies/downstream_headline.py) on a tiny run with two staged checkpoints and fake tasks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers_downstream import SEQUENCE_TASK, TOKEN_TASK, make_checkpoint, make_export
from tests.helpers_scripts import load_script
from zhbert import downstream_schema as S
from zhbert.errors import UserError

FAST = dict(max_steps=2, batch_size=4, max_length=10, eval_batch_size=8)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture()
def study(monkeypatch):
    """The study module with the fake tasks and a two-update budget."""
    mod = load_script("studies/downstream_study.py")
    tasks = {t.name: t for t in (TOKEN_TASK, SEQUENCE_TASK)}
    monkeypatch.setattr("zhbert.downstream.tasks.get_task", lambda name: tasks[name])
    monkeypatch.setattr(mod, "BUDGETS", {name: dict(FAST) for name in tasks})
    return mod


@pytest.fixture()
def run(tmp_path):
    """A run with checkpoints at steps 5 and 10 and a history with held-out points there."""
    for step in (5, 10):
        ckpt = make_checkpoint(tmp_path / f"c{step}", "modern", step=step)
        dst = tmp_path / "run" / "checkpoints" / ckpt.name
        shutil.copytree(ckpt, dst)
    steps = list(range(1, 13))
    history = {"steps": steps, "mlm_acc": [0.02 * s for s in steps],
               "loss": [6.0 - 0.1 * s for s in steps], "lr": [1e-3] * 12,
               "eval_steps": [5, 10], "eval_mlm_acc": [0.12, 0.25]}
    (tmp_path / "run" / "training_history.json").write_text(json.dumps(history))
    return tmp_path / "run"


def _args(run: Path, out: Path, *extra: str) -> list[str]:
    return ["--run", str(run), "--out-dir", str(out), "--workers", "1", "--seeds", "0", "1",
            "--n-boot", "50", *extra]


def test_the_study_fine_tunes_every_checkpoint_records_and_analyses(study, run, tmp_path):
    out = tmp_path / "out"
    assert study.main(_args(run, out, "--tasks", "faketag", "fakecls")) == 0
    records = S.load_scores(run)
    keys = {(r["task"], r["step"], r["init"], r["seed"]) for r in records}
    assert keys == {(t, s, "random" if s == 0 else "pretrained", seed)
                    for t in ("faketag", "fakecls") for s in (0, 5, 10) for seed in (0, 1)}
    assert all(r["budget"].startswith("study-") and 0 <= r["score"] <= 1 for r in records)
    record = json.loads((out / "study.json").read_text())
    assert record["n_fine_tunes"] == 12 and record["workers"] == 1
    block = record["analysis"]["tasks"]["faketag"]
    assert [s["step"] for s in block["steps"]] == [0, 5, 10]
    assert [s["mlm_acc"] for s in block["steps"]] == [None, 0.12, 0.25]
    assert {b["task"] for b in record["budgets"]} == {"faketag", "fakecls"}
    assert (out / "downstream.png").stat().st_size > 10_000
    md = (out / "study.md").read_text()
    assert "| faketag |" in md and "random" in md.lower()
    # the copies in out-dir reproduce the analysis without the run
    copied = S.load_scores(out)
    assert len(copied) == 12 and (out / "training_history.json").is_file()


def test_a_second_call_reuses_what_is_done_and_resumes_the_rest(study, run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert study.main(_args(run, out, "--tasks", "faketag", "--steps", "5")) == 0
    done = sorted(p.name for p in (run / study.JOBS_DIR).glob("*.json"))
    assert done == ["faketag-random-seed0.json", "faketag-random-seed1.json",
                    "faketag-step5-seed0.json", "faketag-step5-seed1.json"]
    ran = []
    real = study.run_job
    monkeypatch.setattr(study, "run_job", lambda job: ran.append(job["name"]) or real(job))
    assert study.main(_args(run, out, "--tasks", "faketag")) == 0
    assert sorted(ran) == ["faketag-step10-seed0", "faketag-step10-seed1"]
    first = json.loads((run / study.JOBS_DIR / "faketag-step5-seed0.json").read_text())
    assert first["test"]["score"] == next(
        r["score"] for r in S.load_scores(run) if r["step"] == 5 and r["seed"] == 0)


def test_the_same_seed_gives_the_same_scores(study, run, tmp_path):
    study.main(_args(run, tmp_path / "a", "--tasks", "fakecls", "--steps", "10"))
    first = {(r["step"], r["seed"]): r["score"] for r in S.load_scores(run)}
    study.main(_args(run, tmp_path / "b", "--tasks", "fakecls", "--steps", "10", "--redo"))
    assert {(r["step"], r["seed"]): r["score"] for r in S.load_scores(run)} == first


def test_dry_run_lists_the_plan(study, run, tmp_path, capsys):
    assert study.main(_args(run, tmp_path / "o", "--tasks", "faketag", "--dry-run")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[0].startswith("faketag-random-seed0: ")
    assert "step_10" in lines[-1] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--steps", "7"], "no such checkpoint"),
    (["--workers", "0"], "--workers must be >= 1"),
])
def test_bad_options_are_user_errors(study, run, tmp_path, extra, needle):
    with pytest.raises(UserError, match=needle):
        study.main(_args(run, tmp_path / "o", "--tasks", "faketag", *extra))
    assert not (tmp_path / "o").exists()


def test_a_run_without_checkpoints_is_refused(study, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "training_history.json").write_text('{"steps": [1]}')
    with pytest.raises(UserError, match="no checkpoints"):
        study.main(_args(tmp_path / "run", tmp_path / "o", "--tasks", "faketag"))


def test_the_headline_fine_tunes_the_export_and_tabulates_baselines(study, tmp_path, monkeypatch):
    head = load_script("studies/downstream_headline.py")
    monkeypatch.setattr(head, "HEADLINE", {"faketag": dict(FAST)})
    monkeypatch.setattr(head, "D", study)
    final = make_export(tmp_path / "x", "modern", history_step=9)
    base = tmp_path / "baselines.json"
    base.write_text(json.dumps({"tasks": {"faketag": {"crf": {"score": 0.5}}}}))
    out = tmp_path / "h"
    assert head.main(["--run", str(final.parent), "--tasks", "faketag", "--out-dir", str(out),
                      "--baselines", str(base), "--workers", "1"]) == 0
    rec = json.loads((out / "headline.json").read_text())
    row = rec["rows"][0]
    assert row["pretrain_step"] == 9 and row["baselines"] == [{"baseline": "crf", "score": 0.5}]
    assert 0 <= row["random_score"] <= 1 and len(rec["rows"]) == 1
    scores = S.load_scores(final.parent)
    assert {(r["init"], r["step"], r["budget"].split("-")[0]) for r in scores} == {
        ("pretrained", 9, "headline"), ("random", 0, "headline")}
    assert "crf 50.00" in (out / "headline.md").read_text()
