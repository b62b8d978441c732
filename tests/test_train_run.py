"""A smoke run end to end: history schema, eval points, checkpoints, final/ in transformers."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

import main_train
from zhbert import history_schema as H
from zhbert.errors import UserError
from zhbert.training.checkpoint import list_checkpoints

TRAIN_COLS = H.keys("train", nsp=False)
EVAL_COLS = H.keys("eval", nsp=False)


@pytest.fixture(scope="module")
def smoke_run(tiny_corpus, tmp_path_factory):
    """One 20-step smoke run (in-process) shared by the checks below."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    rc = main_train.main(["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
                          "--run-dir", str(run_dir)])
    assert rc == 0
    return run_dir


def test_history_schema_and_values(smoke_run):
    h = json.loads((smoke_run / "training_history.json").read_text())
    assert set(h) == {*TRAIN_COLS, *EVAL_COLS, "meta"}  # exactly the schema's keys
    assert set(h["meta"]) <= set(H.META)
    assert h["steps"] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert all(len(h[k]) == len(h["steps"]) for k in TRAIN_COLS)
    assert "nsp_acc" not in h
    assert h["eval_steps"] == [5, 10, 15, 20]
    assert all(len(h[k]) == len(h["eval_steps"]) for k in EVAL_COLS)
    assert all(0.0 <= a <= 1.0 for a in h["mlm_acc"] + h["eval_mlm_acc"])
    assert all(math.isfinite(x) and x > 0 for x in h["loss"] + h["eval_loss"])
    assert h["lr"][-1] == 0.0 and max(h["lr"]) == pytest.approx(1e-3)
    assert h["tokens_seen"] == sorted(h["tokens_seen"]) and h["tokens_seen"][-1] == 20 * 2 * 8 * 32
    assert h["loss"][-1] < h["loss"][0]
    n = h["meta"]["eval"]["masked_tokens"]
    assert n >= 200 and h["eval_stderr"][-1] == pytest.approx(
        math.sqrt(h["eval_mlm_acc"][-1] * (1 - h["eval_mlm_acc"][-1]) / n))
    meta = h["meta"]
    assert meta["config"]["preset"] == "smoke" and meta["world_size"] == 1
    assert meta["parameters"] > 0 and meta["global_batch"] == 16
    assert len(meta["dataset"]["fingerprint"]) == 64 and meta["torch_version"] == torch.__version__
    assert meta["config"]["model"]["vocab_size"] == meta["dataset"]["stats"]["vocab_size"]
    assert (smoke_run / "train.log").read_text().count("held-out MLM acc") == 4


def test_checkpoints_rotated_and_loadable(smoke_run):
    steps = [s for s, _ in list_checkpoints(smoke_run)]
    assert steps == [10, 15, 20]  # keep_last=2 plus milestone 10
    ck = smoke_run / "checkpoints" / "step_20"
    for name in ("model.safetensors", "config.json", "state.pt", "vocab.txt", "tokenizer.json"):
        assert (ck / name).is_file(), name
    state = torch.load(ck / "state.pt", weights_only=True)
    assert state["step"] == 20 and state["sampler"]["micro_batches"] == 40
    assert state["history_len"] == {"train": 10, "eval": 4}
    cfg = json.loads((ck / "config.json").read_text())
    assert cfg["step"] == 20 and cfg["model"]["hidden_size"] == 32


def test_milestones_off_the_save_interval_are_saved_and_evaluated(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    rc = main_train.main(["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
                          "--set", "run.max_steps=8", "--set", "run.milestones=[3, 7]",
                          "--set", "run.export_final=false", "--run-dir", str(run_dir)])
    assert rc == 0
    assert [s for s, _ in list_checkpoints(run_dir)] == [3, 7, 8]  # keep_last 2, milestones
    h = json.loads((run_dir / "training_history.json").read_text())
    assert h["eval_steps"] == [3, 5, 7, 8]


def test_final_loads_in_transformers(smoke_run, tiny_corpus, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer, BertForMaskedLM

    final = smoke_run / "final"
    model = BertForMaskedLM.from_pretrained(final).eval()
    tok = AutoTokenizer.from_pretrained(final)
    enc = tok("今天天气很[MASK]。", return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape[-1] == json.loads((tiny_corpus / "corpus_meta.json").read_text())[
        "vocab_size"]
    assert torch.isfinite(logits).all()


def test_existing_run_is_refused_then_overwritten(smoke_run, tiny_corpus, tmp_path):
    args = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
            "--run-dir", str(smoke_run)]
    with pytest.raises(UserError, match="already holds a run"):
        main_train.main(args)
    # --overwrite starts afresh (a copy, so the shared run stays intact for other tests)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(smoke_run, copy)
    args[-1] = str(copy)
    assert main_train.main([*args, "--overwrite", "--set", "run.max_steps=3",
                            "--set", "run.export_final=false"]) == 0
    h = json.loads((copy / "training_history.json").read_text())
    assert h["steps"] == [2, 3] and not (copy / "final").exists()
    assert [s for s, _ in list_checkpoints(copy)] == [3]


def test_pairs_with_nsp_run(tiny_corpus, tmp_path):
    run_dir = tmp_path / "nsp"
    assert main_train.main(["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
                            "--set", "data.format=pairs", "--set", "model.use_nsp=true",
                            "--set", "run.max_steps=4", "--set", "run.export_final=false",
                            "--run-dir", str(run_dir)]) == 0
    h = json.loads((run_dir / "training_history.json").read_text())
    assert len(h["nsp_acc"]) == len(h["steps"]) and len(h["eval_nsp_acc"]) == len(h["eval_steps"])
    assert all(0.0 <= a <= 1.0 for a in h["nsp_acc"])


@pytest.mark.parametrize("extra, message", [
    (["--preset", "giant"], "unknown preset"),
    (["--set", "optim.lr=abc"], "expected a number"),
    (["--set", "data.corpus_dir=/nonexistent/corpus"], "not a prepared corpus"),
])
def test_bad_inputs_are_one_line_errors(extra, message, smoke_args, train_cli):
    args, _ = smoke_args
    proc = train_cli([*args, *extra])
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_unwritable_run_dir(smoke_args, tmp_path):
    args, _ = smoke_args
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="not a directory|not writable|cannot"):
        main_train.main([*args, "--run-dir", str(blocker / "run")])
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(UserError, match="not writable|cannot"):
            main_train.main([*args, "--run-dir", str(ro / "run")])


def test_checkpoint_dir_loads_for_inference(smoke_run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from safetensors.torch import load_file

    from zhbert.predict import load_for_inference

    ck = smoke_run / "checkpoints" / "step_20"
    model, _ = load_for_inference(ck)
    saved = load_file(ck / "model.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
