"""Faults around a run: damaged checkpoints, a second trainer, divergence, full disk, fsync."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import main_train
from zhbert.errors import UserError
from zhbert.training import checkpoint as C
from zhbert.training.setup import LOCK_NAME, run_dir_lock


def _base(corpus, run, *extra):
    return ["--preset", "smoke", "--set", f"data.corpus_dir={corpus}", "--run-dir", str(run),
            "--set", "run.export_final=false", "--set", "run.max_steps=10", *extra]


@pytest.fixture(scope="module")
def finished(tiny_corpus, tmp_path_factory):
    """A finished 10-step run with complete checkpoints step_5 and step_10."""
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main_train.main(_base(tiny_corpus, run)) == 0
    assert [s for s, _ in C.list_checkpoints(run)] == [5, 10]
    return run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _set_section(ck: Path, section: str, value) -> None:
    config = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**config, section: value}))


DAMAGE = {
    "model section a list": lambda ck: _set_section(ck, "model", [1, 2]),
    "optim section a string": lambda ck: _set_section(ck, "optim", "x"),
    "deeply nested config": lambda ck: (ck / "config.json").write_text("[" * 100000),
    "truncated weights": lambda ck: _truncate(ck / "model.safetensors"),
    "missing config": lambda ck: (ck / "config.json").unlink(),
    "truncated config": lambda ck: _truncate(ck / "config.json"),
    "garbage state": lambda ck: (ck / "state.pt").write_bytes(b"garbage" * 100),
    "truncated state": lambda ck: _truncate(ck / "state.pt"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_previous(finished, tiny_corpus, tmp_path,
                                                              damage, caplog):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    DAMAGE[damage](run / "checkpoints" / "step_10")
    assert C.checkpoint_problem(run / "checkpoints" / "step_10") is not None
    assert C.checkpoint_problem(run / "checkpoints" / "step_5") is None
    assert main_train.main([*_base(tiny_corpus, run), "--resume"]) == 0
    log = (run / "train.log").read_text()
    assert "skipping damaged checkpoint step_10" in log
    assert f"resumed from {run / 'checkpoints' / 'step_5'} at step 5" in log
    h = json.loads((run / "training_history.json").read_text())
    assert h["steps"][-1] == 10 and h["meta"]["resumed"][-1]["step"] == 5


def test_no_usable_checkpoint_is_one_error(finished, tiny_corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    for step in (5, 10):
        _truncate(run / "checkpoints" / f"step_{step}" / "model.safetensors")
    with pytest.raises(UserError, match="no usable checkpoint.*step_10: model.safetensors is "
                                        "truncated.*step_5"):
        main_train.main([*_base(tiny_corpus, run), "--resume"])


def test_wrong_typed_config_sections_everywhere_is_one_error(finished, tiny_corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    _set_section(run / "checkpoints" / "step_10", "model", [1, 2])
    _set_section(run / "checkpoints" / "step_5", "run", 3)
    with pytest.raises(UserError, match="no usable checkpoint.*step_10: config.json: section "
                                        "'model' is not a JSON object.*step_5: .*'run'"):
        main_train.main([*_base(tiny_corpus, run), "--resume"])


def test_garbage_state_message_is_short(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"\x80\x02garbage" * 50)
    with pytest.raises(UserError) as info:
        C.load_state(tmp_path)
    assert len(str(info.value)) < 250 and "\n" not in str(info.value)


def test_second_trainer_is_refused_naming_the_live_process(finished, tiny_corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with run_dir_lock(run):
        assert f"process {os.getpid()}" in (run / LOCK_NAME).read_text()
        with pytest.raises(UserError, match=f"in use by process {os.getpid()} on "):
            main_train.main([*_base(tiny_corpus, run), "--resume"])
        with pytest.raises(UserError, match="in use by process"):  # a fresh run too
            main_train.main(_base(tiny_corpus, tmp_path / "run"))
    # a lock file left by a dead process does not block
    (run / LOCK_NAME).write_text("process 999999 on elsewhere (started long ago)\n")
    assert main_train.main([*_base(tiny_corpus, run, "--set", "run.max_steps=12"), "--resume"]) == 0


def test_divergence_exits_nonzero_and_history_stays_strict_json(tiny_corpus, tmp_path,
                                                               train_cli):
    run = tmp_path / "run"
    done = train_cli(_base(tiny_corpus, run, "--set", "optim.lr=1e30"))
    assert done.returncode != 0
    err = done.stderr.strip().splitlines()
    assert "diverged" in err[-1] and "Traceback" not in done.stderr
    text = (run / "training_history.json").read_text()
    h = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the history"))
    assert None in h["loss"]


def test_resume_cleans_an_interrupted_final_export(finished, tiny_corpus, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / ".final.x1y2.tmp").mkdir()
    (run / ".final.x1y2.tmp" / "model.safetensors").write_bytes(b"partial")
    assert main_train.main([*_base(tiny_corpus, run), "--resume"]) == 0
    assert not (run / ".final.x1y2.tmp").exists()


def _tiny_model():
    return torch.nn.Linear(3, 2)


def test_checkpoint_files_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    final = C.save_checkpoint(tmp_path, 3, _tiny_model(), {"model": {}}, {"step": 3}, tmp_path)
    names = {Path(p).name for p in synced if ".step_3." in p}
    assert {"model.safetensors", "state.pt", "config.json"} <= names
    assert str(final.parent) in synced  # the rename itself is flushed


def test_full_disk_during_a_checkpoint_is_one_error(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C.torch, "save", full)
    with pytest.raises(UserError, match="cannot write checkpoint .*step_3.*No space left"):
        C.save_checkpoint(tmp_path, 3, _tiny_model(), {"model": {}}, {"step": 3}, tmp_path)
    assert not any((tmp_path / "checkpoints").iterdir())  # no half-written step_3


CORPUS_DAMAGE = {
    "empty vocab": (lambda c: (c / "vocab.txt").write_text(""), "vocab.txt: 0 lines"),
    "missing vocab": (lambda c: (c / "vocab.txt").unlink(), "vocab.txt: file not found"),
    "corrupt vocab": (lambda c: (c / "vocab.txt").write_bytes(b"\xff\xfe\x00bad"), "vocab.txt"),
    "short vocab": (lambda c: (c / "vocab.txt").write_text(
        "\n".join((c / "vocab.txt").read_text().splitlines()[:50]) + "\n"),
                    "corpus_meta.json says"),
    "no tokenizer.json": (lambda c: (c / "tokenizer.json").unlink(),
                          "tokenizer.json: file not found"),
}


@pytest.mark.parametrize("damage", sorted(CORPUS_DAMAGE))
def test_corpus_with_damaged_tokenizer_files_is_refused(tiny_corpus, tmp_path, damage):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    hurt, needle = CORPUS_DAMAGE[damage]
    hurt(corpus)
    with pytest.raises(UserError, match=needle.replace(".", r"\.")):
        main_train.main(_base(corpus, tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_token_id_outside_the_vocabulary_is_one_line(tiny_corpus, tmp_path, train_cli):
    """A corrupt id stops training and the baselines at load time, naming the file and the id."""
    from zhbert.corpus.binary import load_corpus_info

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    info = load_corpus_info(corpus)
    tokens = np.memmap(corpus / "train.tokens.bin", dtype=info.dtype, mode="r+")
    tokens[7] = bad = info.vocab_size + 3
    tokens.flush()
    del tokens
    needles = ("train.tokens.bin", f"token id {bad}", f"vocabulary size {info.vocab_size}")
    done = train_cli(_base(corpus, tmp_path / "run"))
    _one_line_error(done, *needles)
    assert not (tmp_path / "run" / "training_history.json").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()
    out = tmp_path / "baselines.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(main_train.ROOT / "examples" / "baselines.py"),
                           "--corpus", str(corpus), "--preset", "smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=180, cwd=main_train.ROOT, env=env)
    _one_line_error(done, *needles)
    assert not out.exists()


def _one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(n in last for n in needles), last
