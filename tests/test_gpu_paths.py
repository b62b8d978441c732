"""The CUDA code paths, exercised on the CPU: precision choice per GPU generation, aligned trim
lengths, the fp16 autocast + GradScaler loop, non-finite gradients, DDP interval sums on resume,
and an encoder forward without graph breaks (no host-device synchronisation)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import zhbert.training.loop as loop
from zhbert.config import build_config
from zhbert.errors import UserError
from zhbert.layout import batch_layout
from zhbert.model import BertForPretraining
from zhbert.model_config import BertConfig
from zhbert.models import build_model
from zhbert.training import setup as S
from zhbert.training.build import batch_preparer
from zhbert.training.checkpoint import list_checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg(corpus, *overrides):
    return build_config("smoke", overrides=[f"data.corpus_dir={corpus}",
                                            "run.export_final=false", *overrides])


def _history(run_dir):
    return json.loads((run_dir / "training_history.json").read_text())


# ----------------------------------------------------------------------------- precision


@pytest.mark.parametrize("capability, expected", [((6, 1), "fp16"), ((7, 0), "fp16"),
                                                  ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                  ((8, 9), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_follows_compute_capability(monkeypatch, capability, expected):
    # torch's is_bf16_supported() says True on emulating GPUs too; it must not decide.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True:
                        including_emulation or capability[0] >= 8)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    cfg = build_config("smoke", overrides=["run.precision=auto"])
    choice = S.resolve_precision(cfg, torch.device("cuda", 0))
    assert choice.precision == expected and choice.bf16_speedup is None
    assert f"compute capability {capability[0]}.{capability[1]}" in choice.reason


# ----------------------------------------------------------------------------- layout


def _pairs_batch(B=6, L=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, 30, (B,), generator=g)
    mask = (torch.arange(L)[None] < lengths[:, None]).long()
    ids = torch.randint(5, 50, (B, L), generator=g) * mask
    labels = torch.where((torch.rand(B, L, generator=g) < 0.2) & mask.bool(), ids, -100)
    return ids, mask, labels, lengths


def test_trimmed_length_rounds_up_to_a_multiple_of_8_on_gpu_or_compile(tiny_corpus):
    from zhbert.corpus import load_split
    from zhbert.corpus.binary import load_corpus_info
    from zhbert.data import BatchBuilder

    info = load_corpus_info(tiny_corpus)
    cfg = _cfg(tiny_corpus, "data.format=pairs", "data.seq_len=60", "model.use_nsp=true",
               "run.compile=true")
    builder = BatchBuilder(load_split(info.path, "train"), info, cfg.data, seed=1)
    aligned = batch_preparer(cfg, torch.device("cpu"))
    cfg.run.compile = False
    exact = batch_preparer(cfg, torch.device("cpu"))
    lengths = set()
    for g in range(12):
        raw = builder.build(g)
        used = int(raw.attention_mask.sum(1).max())
        a, e = aligned(raw), exact(raw)
        assert e.layout.length == used and e.input_ids.shape[1] == used
        assert a.layout.length == min(-(-used // 8) * 8, 60) == a.input_ids.shape[1]
        lengths.add(a.layout.length)
    assert lengths <= {8, 16, 24, 32, 40, 48, 56, 60}


def test_layout_given_or_computed_gives_the_same_outputs():
    torch.manual_seed(0)
    model = BertForPretraining(BertConfig(vocab_size=50, hidden_size=32, num_layers=2,
                                          num_heads=2, intermediate_size=64,
                                          max_position_embeddings=64, use_nsp=True)).eval()
    ids, mask, labels, _ = _pairs_batch()
    nsp = torch.tensor([0, 1, 0, 1, 1, 0])
    ref = model(ids, attention_mask=mask, mlm_labels=labels, nsp_labels=nsp)
    for multiple in (1, 8):
        lay = batch_layout(ids, mask, labels, with_cls=True, multiple=multiple)
        out = model(ids[:, :lay.length], attention_mask=mask[:, :lay.length],
                    mlm_labels=labels[:, :lay.length], nsp_labels=nsp, layout=lay)
        torch.testing.assert_close(out.loss, ref.loss)
        assert int(out.mlm_correct) == int(ref.mlm_correct)
        assert int(out.mlm_count) == int((labels != -100).sum())
    with pytest.raises(ValueError, match="with_cls"):
        model(ids, attention_mask=mask, mlm_labels=labels, nsp_labels=nsp,
              layout=batch_layout(ids, mask, labels))


@pytest.mark.parametrize("arch, extra", [
    ("bert", {"use_nsp": True}), ("modern", {}),
    ("modern", {"local_window": 8, "global_every": 2})])
def test_encoder_forward_has_no_graph_breaks(arch, extra):
    """With the host-computed layout, dynamo captures the training forward in one graph
    (without it: nonzero / item / unique break the graph, and sync a GPU, ~7 times)."""
    torch.manual_seed(0)
    model = build_model(BertConfig(vocab_size=50, hidden_size=32, num_layers=2, num_heads=2,
                                   intermediate_size=64, max_position_embeddings=64,
                                   arch=arch, **extra)).train()
    nsp = model.config.use_nsp
    ids, mask, labels, _ = _pairs_batch()
    lay = batch_layout(ids, mask, labels, with_cls=nsp, multiple=8)
    ids, mask, labels = (t[:, :lay.length] for t in (ids, mask, labels))
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(
        ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), mlm_labels=labels,
        nsp_labels=torch.tensor([0, 1, 0, 1, 1, 0]) if nsp else None, layout=lay)
    torch._dynamo.reset()
    reasons = [r.reason.splitlines()[0] for r in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


# ----------------------------------------------------------------------------- the loop


def _inject_grad(monkeypatch, steps: set[int], value: float) -> None:
    """After the last micro-batch of each step in ``steps``, one gradient entry is ``value``."""
    real = loop._micro_step

    def micro_step(s, p, micro):
        real(s, p, micro)
        if p.step + 1 in steps and micro == s.cfg.optim.grad_accum - 1:
            next(s.model.parameters()).grad.view(-1)[0] = value

    monkeypatch.setattr(loop, "_micro_step", micro_step)


def test_fp16_autocast_and_grad_scaler_through_the_loop(tiny_corpus, tmp_path, monkeypatch):
    """The older GPUs' path (fp16 autocast + GradScaler) on the CPU: an overflowing step is
    skipped by the scaler, the scale halves, and the logged gradient norm stays finite."""
    _inject_grad(monkeypatch, {3}, float("inf"))
    run_dir = tmp_path / "fp16"
    loop.train(_cfg(tiny_corpus, "run.precision=fp16", "run.max_steps=6", "run.save_interval=6"),
               run_dir, echo=lambda *_: None)
    h = _history(run_dir)
    assert h["meta"]["precision"] == "fp16"
    assert sum(h["skipped_steps"]) >= 1  # ours, plus any the scaler made on its own
    assert all(g is None or g == g and g < float("inf") for g in h["grad_norm"])
    assert all(0.0 <= a <= 1.0 for a in h["mlm_acc"])
    (_, ckpt), = list_checkpoints(run_dir)
    scaler = torch.load(ckpt / "state.pt", weights_only=True)["scaler"]
    assert scaler["scale"] == 65536.0 / 2 ** sum(h["skipped_steps"])


def test_nan_gradient_skips_the_step(tiny_corpus, tmp_path, monkeypatch):
    _inject_grad(monkeypatch, {3}, float("nan"))
    run_dir = tmp_path / "nan"
    loop.train(_cfg(tiny_corpus, "run.max_steps=4", "run.save_interval=2", "run.keep_last=5"),
               run_dir, echo=lambda *_: None)
    h = _history(run_dir)
    assert h["steps"] == [2, 4] and h["skipped_steps"] == [0, 1]
    assert all(g == g for g in h["grad_norm"])  # the skipped step's NaN is not averaged in
    assert "update skipped" in (run_dir / "train.log").read_text()
    # steps 3 (skipped) and 4 ran: the weights at step 4 are finite and saved
    (_, ck2), (_, ck4) = list_checkpoints(run_dir)
    assert all(torch.isfinite(t).all() for t in load_file(ck4 / "model.safetensors").values())


def test_consecutive_non_finite_steps_stop_the_run_without_saving(tiny_corpus, tmp_path,
                                                                    monkeypatch):
    _inject_grad(monkeypatch, set(range(4, 100)), float("nan"))
    run_dir = tmp_path / "diverged"
    cfg = _cfg(tiny_corpus, "run.max_steps=20", "run.save_interval=2", "run.keep_last=1",
               "optim.max_skipped_steps=3")
    with pytest.raises(UserError, match="3 consecutive steps"):
        loop.train(cfg, run_dir, echo=lambda *_: None)
    # step 4 (after a skipped step) was not saved, so rotation kept the good step-2 checkpoint
    assert [s for s, _ in list_checkpoints(run_dir)] == [2]
    assert "checkpoint left out" in (run_dir / "train.log").read_text()


def test_huge_learning_rate_exits_non_zero(smoke_args, train_cli):
    args, run_dir = smoke_args
    proc = train_cli([*args, "--set", "optim.lr=1e30", "--set", "run.export_final=false"])
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "not finite" in last and "Traceback" not in proc.stderr
    assert not (run_dir / "final").exists()


# ----------------------------------------------------------------------------- DDP resume


def _torchrun(args, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "main_train.py", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ddp_resume_counts_the_interval_once(tiny_corpus, tmp_path):
    """Checkpoint at step 3 inside the log interval (steps 1-4): after a resume the interval's
    sums must hold every rank's steps 1-3 exactly once."""
    base = ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}", "--set",
            "run.max_steps=4", "--set", "run.log_interval=4", "--set", "run.save_interval=3",
            "--set", "run.eval_interval=4", "--set", "run.keep_last=5", "--set",
            "run.export_final=false"]
    run = tmp_path / "ddp"
    _torchrun([*base, "--run-dir", str(run)])
    ref = _history(run)
    shutil.rmtree(dict(list_checkpoints(run))[4])  # as if killed after the step-3 checkpoint
    _torchrun([*base, "--run-dir", str(run), "--resume"])
    got = _history(run)
    assert got["meta"]["resumed"][-1]["step"] == 3
    assert got["tokens_seen"] == ref["tokens_seen"] == [4 * 2 * 8 * 32 * 2]
    assert got["mlm_acc"] == pytest.approx(ref["mlm_acc"], abs=1e-12)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-9)


# ----------------------------------------------------------------------------- gpu_check


def test_gpu_check_runs_on_the_cpu(tiny_corpus, tmp_path, monkeypatch):
    import importlib.util

    from zhbert.training import precision as P

    # a CPU with native bf16 that the probe finds faster: every case runs, auto picks bf16
    monkeypatch.setattr(P, "cpu_native_bf16", lambda: True)
    monkeypatch.setattr(P, "probe_bf16_speedup", lambda *shape, **kw: 4.0)

    spec = importlib.util.spec_from_file_location("gpu_check", f"{ROOT}/benchmarks/gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--preset", "smoke", "--corpus", str(tiny_corpus), "--steps", "2",
                           "--warmup", "1", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["device"]["type"] == "cpu" and rep["device"]["precision_auto"] == "bf16"
    assert "4.00x faster" in rep["device"]["precision_reason"]
    assert [(c["precision"], c["compile"]) for c in rep["cases"]] == [
        ("bf16", False), ("fp16", False), ("fp32", False)]
    for case in rep["cases"]:
        assert case["tokens_per_s"] > 0 and case["steps"] == 2
        # an MFU is a share of a peak: above 1 the peak is no bound and none is reported
        assert (0 < case["mfu"] <= 1) if case["mfu"] is not None else "no bound" in case["mfu_note"]
        assert case["syncs_per_step"] is None and "CUDA" in case["not_measured"]
    assert rep["graph_breaks"] == {"graphs": 1, "breaks": 0, "reasons": []}
    assert rep["memory_estimate"]["fused_attention"]["activations_bytes"] < rep[
        "memory_estimate"]["cpu_kernels"]["activations_bytes"]  # no L x L tensors kept
    mem = rep["memory_estimate"]["cpu_kernels"]
    assert mem["total_bytes"] == (mem["weights_bytes"] + mem["gradients_bytes"]
                                  + mem["adamw_bytes"] + mem["activations_bytes"])
    assert mem["weights_bytes"] == 4 * BertForPretraining(
        _cfg(tiny_corpus).model).num_parameters() and mem["activations_bytes"] > 0
    assert "2 CUDA GPUs" in rep["ddp"]["skipped"]
    assert any("compile" in s for s in rep["skipped"])
