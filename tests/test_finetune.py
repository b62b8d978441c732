"""Fine-tuning through transformers (zhbert.downstream.finetune, examples/finetune.py) and the
downstream scores file (zhbert.downstream_schema), on tiny exports and checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.helpers_downstream import SEQUENCE_TASK, TOKEN_TASK, make_checkpoint, make_export
from tests.helpers_model import make_tokenizer_dir
from tests.helpers_scripts import load_script
from zhbert import downstream_schema as S
from zhbert.downstream import encode as E
from zhbert.downstream.finetune import FinetuneConfig, finetune
from zhbert.downstream.source import open_source
from zhbert.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
FAST = FinetuneConfig(max_steps=2, batch_size=4, max_length=10, precision="fp32")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny BERT and a tiny ModernBERT export, each as RUN/final with a history beside it."""
    root = tmp_path_factory.mktemp("exports")
    return {arch: make_export(root / arch, arch) for arch in ("bert", "modern")}


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "examples" / "finetune.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


# ------------------------------------------------------------------ characters -> tokens


def test_every_character_is_one_token_and_keeps_its_tag(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(make_tokenizer_dir(tmp_path / "tok"))
    lookup = E.char_lookup(tok)
    chars = ("今", "Ｘ", " ", "天", "。")  # a full-width letter and a space: [UNK], no merging
    ex = TOKEN_TASK.load("train")[0].__class__(chars, ("O", "S-PER", "O", "O", "S-PER"))
    items = E.token_items([ex], lookup, {"O": 0, "S-PER": 1}, tok.cls_token_id,
                          tok.sep_token_id, max_length=16)
    (item,) = items
    unk = tok.unk_token_id
    assert item.ids == (tok.cls_token_id, tok.convert_tokens_to_ids("今"), unk, unk,
                        tok.convert_tokens_to_ids("天"), tok.convert_tokens_to_ids("。"),
                        tok.sep_token_id)
    assert item.labels == (E.IGNORE, 0, 1, 0, 0, 1, E.IGNORE)


def test_long_sentences_are_windowed_and_every_character_is_predicted():
    ex = TOKEN_TASK.load("train")[0].__class__(tuple("今天气很好热冷的是我你"),
                                               ("O",) * 11)
    lookup = {c: i + 10 for i, c in enumerate(ex.chars)}.get
    train = E.token_items([ex], lookup, {"O": 0}, 2, 3, max_length=6)  # 4 characters a window
    assert [(it.start, len(it.ids) - 2) for it in train] == [(0, 4), (4, 4), (7, 4)]
    scored = E.token_items([ex], lookup, {"O": 0}, 2, 3, max_length=6, stride=2)
    assert [it.start for it in scored] == [0, 2, 4, 6, 7]
    # each window "predicts" its own absolute positions (checks the offsets), then its own
    # index (checks which window each character is taken from: the most context on both sides)
    tags = [str(i) for i in range(11)]
    predicted = [list(range(it.start, it.start + len(it.ids) - 2)) for it in scored]
    assert E.assemble_tags([ex], scored, predicted, tags) == [tags]
    predicted = [[w] * (len(it.ids) - 2) for w, it in enumerate(scored)]
    assert E.assemble_tags([ex], scored, predicted, tags) == \
        [["0", "0", "0", "1", "1", "2", "2", "3", "3", "4", "4"]]


# ------------------------------------------------------------------ the loop


@pytest.mark.parametrize("arch", ["bert", "modern"])
@pytest.mark.parametrize("task", [TOKEN_TASK, SEQUENCE_TASK], ids=["token", "sequence"])
def test_a_two_step_fine_tune_scores_and_is_deterministic(exports, arch, task):
    runs = []
    for _ in range(2):
        with open_source(exports[arch]) as source:
            model, _, result = finetune(task, source, FAST)
        runs.append(result)
    a, b = runs
    assert a["updates"] == 2 and a["arch"] == arch and a["pretrain_step"] == 7
    assert 0.0 <= a["test"]["score"] <= 1.0 and a["test"]["n"] > 0
    assert (a["dev"], a["test"], a["dev_curve"]) == (b["dev"], b["test"], b["dev_curve"])
    assert a["precision"]["precision"] == "fp32"
    if task.kind == "token":  # max_length 10 windows the 3-14 character sentences
        assert a["windows"]["train"] > a["examples"]["train"]
        assert a["test"]["n"] == sum(len(e.chars) for e in task.load("test"))


def test_another_seed_and_random_init_change_the_model(exports):
    def weights(cfg):
        with open_source(exports["modern"]) as source:
            model, _, result = finetune(TOKEN_TASK, source, replace(cfg, max_steps=1, lr=1e-9))
        return model.state_dict(), result

    pre, _ = weights(FAST)
    rnd, result = weights(replace(FAST, init="random"))
    other, _ = weights(replace(FAST, seed=1))
    key = "model.embeddings.tok_embeddings.weight"
    assert not torch.allclose(pre[key], rnd[key])
    assert torch.allclose(pre[key], other[key], atol=1e-6)  # the encoder is the export's
    assert not torch.equal(pre["classifier.weight"], other["classifier.weight"])
    assert result["init"] == "random" and result["pretrain_step"] == 0


def test_pooling_auto_is_mean_for_modernbert_and_cls_for_bert(exports):
    for arch, want in (("modern", "mean"), ("bert", "cls")):
        with open_source(exports[arch]) as source:
            model, _, result = finetune(SEQUENCE_TASK, source, FAST)
        assert result["config"]["pooling"] == want
        if arch == "modern":
            assert model.config.classifier_pooling == "mean"
    with open_source(exports["modern"]) as source:  # cls on request, and a different model
        model, _, cls = finetune(SEQUENCE_TASK, source, replace(FAST, pooling="cls"))
    assert model.config.classifier_pooling == "cls" and cls["config"]["pooling"] == "cls"
    with open_source(exports["bert"]) as source, pytest.raises(UserError, match="pools"):
        finetune(SEQUENCE_TASK, source, replace(FAST, pooling="mean"))


def test_the_best_dev_weights_are_kept(exports):
    cfg = replace(FAST, max_steps=6, eval_every=1, lr=5e-2)
    with open_source(exports["bert"]) as source:
        model, _, result = finetune(SEQUENCE_TASK, source, cfg)
    curve = result["dev_curve"]
    assert [p["step"] for p in curve] == [1, 2, 3, 4, 5, 6]
    best = max(curve, key=lambda p: p["dev"])  # the first of equal maxima
    assert result["best_step"] == best["step"] and result["dev"]["score"] == best["dev"]


def test_a_staged_checkpoint_loads_and_fine_tunes(tmp_path):
    ckpt = make_checkpoint(tmp_path, "modern", step=5)
    with open_source(ckpt) as source:
        assert source.kind == "checkpoint" and source.step == 5
        hf_dir = source.hf_dir
        assert (hf_dir / "config.json").is_file()
        _, _, result = finetune(TOKEN_TASK, source, FAST)
    assert not hf_dir.exists()  # the converted folder is temporary
    assert result["kind"] == "checkpoint" and result["pretrain_step"] == 5


def test_a_checkpoint_whose_vocabulary_differs_is_refused(tmp_path):
    ckpt = make_checkpoint(tmp_path, "bert", extra_vocab=3)
    with pytest.raises(UserError, match="different vocabulary"), open_source(ckpt):
        pass


# ------------------------------------------------------------------ the script


def test_the_script_writes_a_loadable_model_and_records_it(exports, tmp_path, monkeypatch):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    script = load_script("examples/finetune.py")
    monkeypatch.setattr("zhbert.downstream.tasks.get_task", lambda name: TOKEN_TASK)
    out, record = tmp_path / "ft", tmp_path / "run"
    args = ["--model", str(exports["bert"]), "--task", "faketag", "--max-steps", "2",
            "--batch-size", "4", "--max-length", "10", "--precision", "fp32", "--quiet",
            "--out", str(out), "--record", str(record)]
    assert script.main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["task"] == "faketag" and result["transformers_version"]
    model = AutoModelForTokenClassification.from_pretrained(out)
    assert model.config.id2label == {0: "O", 1: "S-PER"}
    assert AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("今") == 5
    (rec,) = S.load_scores(record)
    assert (rec["task"], rec["step"], rec["init"], rec["seed"]) == ("faketag", 7, "pretrained", 0)
    assert rec["score"] == result["test"]["score"] and rec["dev_score"] == result["dev"]["score"]
    assert rec["train_examples"] == 20 and rec["budget"].startswith("train20-")
    # the same fine-tune again replaces its record; another seed adds one
    assert script.main(args) == 0
    assert script.main([*args, "--seed", "1", "--no-model", "--out", str(tmp_path / "ft1")]) == 0
    assert [r["seed"] for r in S.load_scores(record)] == [0, 1]
    assert not (tmp_path / "ft1" / "model.safetensors").exists()


@pytest.mark.parametrize("extra, needle", [
    (["--task", "nosuch"], "unknown task 'nosuch'"),
    (["--task", "sentiment", "--train-limit", "0"], "--train-limit must be >= 1"),
    (["--task", "sentiment", "--max-length", "65"], "--max-length must be in [3, 64]"),
    (["--task", "sentiment", "--lr", "nan"], "--lr must be a positive number"),
])
def test_bad_flags_are_one_line_errors_without_output(exports, tmp_path, extra, needle):
    out = tmp_path / "ft"
    proc = _cli("--model", str(exports["bert"]), "--out", str(out), *extra)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert needle in proc.stderr
    assert not out.exists()


def test_bad_model_folders_and_records_are_one_line_errors(exports, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text('{"model_type": "gpt2"}')
    bad_record = tmp_path / "badrun"
    bad_record.mkdir()
    (bad_record / S.SCORES_NAME).write_text('{"format": "something else"}')
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    cases = [
        (["--model", str(tmp_path / "nothing")], "directory not found"),
        (["--model", str(tmp_path / "empty")], "config.json: file not found"),
        (["--model", str(tmp_path / "gpt")], "model_type 'gpt2'"),
        (["--model", str(exports["bert"]), "--record", str(bad_record)],
         "not a downstream scores file"),
    ]
    for extra, needle in cases:
        out = tmp_path / "ft"
        proc = _cli("--task", "sentiment", "--out", str(out), *extra)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert needle in proc.stderr.strip().splitlines()[-1], proc.stderr
        assert not out.exists()
    proc = _cli("--task", "sentiment", "--model", str(exports["bert"]), "--out",
                str(tmp_path / "mine"))
    assert "not a fine-tune output" in proc.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_the_scores_format_loads_without_torch():
    from tests.test_imports import loaded_after

    assert loaded_after("import zhbert.downstream_schema", ("torch", "zhbert.training")) == []
