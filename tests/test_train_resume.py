"""Resume after SIGKILL reproduces an uninterrupted run exactly; incompatible resumes refuse."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import main_train
from zhbert.errors import UserError
from zhbert.training.schedule import lr_at

ROOT_ARGS = ["--set", "run.max_steps=24", "--set", "run.save_interval=4",
             "--set", "run.log_interval=3", "--set", "run.eval_interval=6",
             "--set", "run.export_final=false"]
# Columns that depend on wall time are not expected to match.
TIMED = {"elapsed_s", "tokens_per_s", "data_wait_frac", "eval_eta_s"}
# main_train.py with every step slowed down, so the test can kill it mid-run (the slowing is
# the test's, not a setting of the trainer).
SLOW_TRAIN = """
import sys, time
import main_train
from zhbert.training import loop
real_step = loop.train_step
def slow_step(s, p):
    real_step(s, p)
    time.sleep(0.25)
loop.train_step = slow_step
sys.exit(main_train.main(sys.argv[1:]))
"""


def _history(run_dir):
    return json.loads((run_dir / "training_history.json").read_text())


def test_resume_after_sigkill_matches_uninterrupted(tiny_corpus, tmp_path, train_cli):
    base = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", *ROOT_ARGS]
    ref = tmp_path / "ref"
    assert main_train.main([*base, "--run-dir", str(ref)]) == 0

    run = tmp_path / "killed"
    cmd = [sys.executable, "-c", SLOW_TRAIN, *base, "--run-dir", str(run)]
    proc = subprocess.Popen(cmd, cwd=main_train.ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "step_8").is_dir():
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (run / "checkpoints" / "step_24").exists()
    done = train_cli([*base[:], "--run-dir", str(run), "--resume"])
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout

    a = load_file(ref / "checkpoints" / "step_24" / "model.safetensors")
    b = load_file(run / "checkpoints" / "step_24" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = _history(ref), _history(run)
    for key in ha:
        if key != "meta" and key not in TIMED:
            assert ha[key] == hb[key], key
    assert [r["step"] for r in hb["meta"]["resumed"]] and hb["meta"]["resumed"][0]["step"] >= 8


def test_resume_with_other_shape_is_refused(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    base = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", "--run-dir", str(run),
            "--set", "run.max_steps=4", "--set", "run.export_final=false"]
    assert main_train.main(base) == 0
    with pytest.raises(UserError, match="hidden_size"):
        main_train.main([*base, "--resume", "--set", "model.hidden_size=64",
                         "--set", "run.max_steps=6"])
    # a longer run resumes from step 4 and keeps the first points
    assert main_train.main([*base, "--resume", "--set", "run.max_steps=6"]) == 0
    h = _history(run)
    assert h["steps"] == [2, 4, 6]


def test_resume_rejects_a_checkpoint_of_another_vocabulary(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    base = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", "--run-dir", str(run),
            "--set", "run.max_steps=2", "--set", "run.export_final=false"]
    assert main_train.main(base) == 0
    ck = run / "checkpoints" / "step_2" / "config.json"
    cfg = json.loads(ck.read_text())
    cfg["model"]["vocab_size"] += 7
    ck.write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="vocab_size"):
        main_train.main([*base, "--resume", "--set", "run.max_steps=3"])


def test_resume_applies_changed_schedule_and_optimizer_settings(tiny_corpus, tmp_path):
    """Extending a finished run trains at a positive lr under the new config's schedule."""
    run = tmp_path / "run"
    base = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", "--run-dir", str(run),
            "--set", "run.export_final=false", "--set", "run.max_steps=4"]
    assert main_train.main(base) == 0
    w4 = load_file(run / "checkpoints" / "step_4" / "model.safetensors")
    assert main_train.main([*base, "--resume", "--set", "run.max_steps=8", "--set",
                            "optim.lr=0.002", "--set", "optim.weight_decay=0.05"]) == 0
    h = _history(run)
    assert h["steps"] == [2, 4, 6, 8]
    assert h["lr"][2] == pytest.approx(lr_at(2e-3, 6, 4, 8)) and h["lr"][2] > 1e-4
    w8 = load_file(run / "checkpoints" / "step_8" / "model.safetensors")
    assert any(not torch.equal(w4[k], w8[k]) for k in w4)  # the extra steps moved the weights
    last = h["meta"]["resumed"][-1]
    assert last["step"] == 4 and "run.max_steps: 4 -> 8" in last["config_changes"]
    assert "optim.lr: 0.001 -> 0.002" in last["config_changes"]
    assert h["meta"]["config"]["optim"]["lr"] == 0.002
    state = torch.load(run / "checkpoints" / "step_8" / "state.pt", weights_only=True)
    assert [g["weight_decay"] for g in state["optimizer"]["param_groups"]] == [0.05, 0.0]


REFUSED_MODEL_CHANGES = ["model.local_window=8", "model.rope_theta=500", "model.global_every=2",
                         "model.layer_norm_eps=1e-6", "model.tie_word_embeddings=false",
                         "model.arch=bert"]


def test_resume_compares_the_whole_model_section(tiny_corpus, tmp_path):
    """Keys that change what the weights compute are refused; dropout is applied and recorded."""
    run = tmp_path / "run"
    base = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", "--run-dir", str(run),
            "--set", "model.arch=modern", "--set", "run.max_steps=2",
            "--set", "run.export_final=false"]
    assert main_train.main(base) == 0
    before = (run / "training_history.json").read_bytes()
    for item in REFUSED_MODEL_CHANGES:
        key = item.split("=")[0]
        with pytest.raises(UserError, match=f"{key}=.*resume with the original config"):
            main_train.main([*base, "--resume", "--set", item, "--set", "run.max_steps=3"])
    assert (run / "training_history.json").read_bytes() == before
    assert main_train.main([*base, "--resume", "--set", "run.max_steps=4", "--set",
                            "model.dropout=0.0", "--set", "model.attention_dropout=0.0"]) == 0
    changes = _history(run)["meta"]["resumed"][-1]["config_changes"]
    assert "model.dropout: 0.1 -> 0.0" in changes
    assert "model.attention_dropout: 0.1 -> 0.0" in changes
    log = (run / "train.log").read_text()
    assert "config changed since the checkpoint (applied from now on): model.dropout" in log


def test_resume_with_a_history_but_no_checkpoint_is_refused(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    base = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", "--run-dir", str(run),
            "--set", "run.max_steps=2", "--set", "run.export_final=false", "--resume"]
    assert main_train.main(base) == 0  # --resume on a fresh directory starts from step 0
    assert "no complete checkpoint" in (run / "train.log").read_text()
    shutil.rmtree(run / "checkpoints")
    before = (run / "training_history.json").read_bytes()
    with pytest.raises(UserError, match="training_history.json but no checkpoint.*--overwrite"):
        main_train.main(base)
    assert (run / "training_history.json").read_bytes() == before
