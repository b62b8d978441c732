"""Schedule, optimizer groups, batch builders, sampler state and the held-out set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zhbert.config import get_preset
from zhbert.corpus import load_corpus_info, load_split
from zhbert.data import NSP_IS_NEXT, NSP_RANDOM, BatchBuilder, BatchStream, build_eval_set
from zhbert.model import BertForPretraining
from zhbert.model_config import BertConfig
from zhbert.training.optim import make_optimizer, param_groups
from zhbert.training.schedule import lr_at, scheduled_lr


def test_schedule_peaks_at_warmup_end_and_reaches_zero():
    cfg = get_preset("smoke")
    cfg.optim.lr, cfg.optim.warmup_steps, cfg.run.max_steps = 1e-3, 10, 100
    lrs = [scheduled_lr(cfg, step) for step in range(100)]  # step: updates already taken
    assert lrs[0] == pytest.approx(1e-4)  # 1/10 of the peak at update 1
    assert lrs[9] == pytest.approx(1e-3) and max(lrs) == pytest.approx(1e-3)  # peak at update 10
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10], strict=True))  # linear rise
    assert all(a >= b for a, b in zip(lrs[9:-1], lrs[10:], strict=True))  # monotone decay
    assert lrs[-1] == 0.0  # cosine reaches exactly 0 at the last step
    assert lrs[54] == pytest.approx(5e-4)  # half-way through the decay
    assert lr_at(1e-3, 100, 10, 100) == 0.0 and lr_at(1e-3, 10, 10, 100) == pytest.approx(1e-3)
    assert lr_at(1.0, 55, 10, 100, "linear") == pytest.approx(0.5)
    assert lr_at(1.0, 90, 10, 100, "constant") == 1.0


def test_no_decay_for_biases_and_layernorm():
    model = BertForPretraining(BertConfig(vocab_size=50, hidden_size=16, num_layers=1,
                                          num_heads=2, intermediate_size=32))
    decay, no_decay = param_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and p.ndim == 2 for p in decay["params"])
    assert any("LayerNorm" in names[id(p)] or "norm" in names[id(p)].lower()
               for p in no_decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    n = len(decay["params"]) + len(no_decay["params"])
    assert n == len(list(model.parameters()))
    opt = make_optimizer(model, get_preset("efficient").optim, torch.device("cpu"))
    assert opt.defaults["fused"] is True and opt.defaults["betas"] == (0.9, 0.98)  # fused on CPU


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return load_corpus_info(tiny_corpus), load_split(tiny_corpus, "train"), load_split(
        tiny_corpus, "val")


def test_packed_batches_are_deterministic_and_differ_per_rank(corpus):
    info, train, _ = corpus
    cfg = get_preset("smoke").data
    b0 = BatchBuilder(train, info, cfg, seed=1, rank=0, world_size=2)
    b1 = BatchBuilder(train, info, cfg, seed=1, rank=1, world_size=2)
    x, y = b0.build(3), b0.build(3)
    assert torch.equal(x.input_ids, y.input_ids) and torch.equal(x.mlm_labels, y.mlm_labels)
    assert x.input_ids.shape == (cfg.batch_size, cfg.seq_len)
    assert (x.input_ids[:, 0] == info.cls_id).all() and (x.input_ids[:, -1] == info.sep_id).all()
    assert x.n_tokens == cfg.batch_size * cfg.seq_len and bool(x.attention_mask.all())
    assert not torch.equal(x.input_ids, b1.build(3).input_ids)
    masked = (x.mlm_labels != -100).float().mean().item()
    assert 0.08 < masked < 0.2
    # the unmasked input equals the corpus at the labelled positions' originals
    units0, _ = b0.units(3)
    units1, _ = b1.units(3)
    assert not set(units0.tolist()) & set(units1.tolist())


def test_pairs_are_padded_with_half_next_sentences(corpus):
    info, train, _ = corpus
    cfg = get_preset("smoke").data
    cfg.format, cfg.batch_size, cfg.seq_len = "pairs", 64, 64
    b = BatchBuilder(train, info, cfg, seed=0).build(0)
    ids, att, tt = b.input_ids, b.attention_mask, b.token_type_ids
    assert set(b.nsp_labels.tolist()) <= {NSP_IS_NEXT, NSP_RANDOM}
    assert 0.25 < (b.nsp_labels == NSP_IS_NEXT).float().mean().item() < 0.75
    lengths = att.sum(1)
    for row in range(len(ids)):
        n = int(lengths[row])
        assert ids[row, 0] == info.cls_id and ids[row, n - 1] == info.sep_id
        assert (ids[row, n:] == info.pad_id).all() and (att[row, :n] == 1).all()
        assert (b.mlm_labels[row, n:] == -100).all()
        seps = (ids[row, :n] == info.sep_id).nonzero().flatten().tolist()
        assert len(seps) >= 2 and tt[row, seps[0] + 1:n].eq(1).all() and tt[row, :seps[0] + 1].eq(
            0).all()
    assert b.n_tokens == int(lengths.sum())


def test_stream_state_resumes_the_same_sequence(corpus):
    info, train, _ = corpus
    cfg = get_preset("smoke").data
    builder = BatchBuilder(train, info, cfg, seed=5)
    s = BatchStream(builder, prefetch=2)
    first = [next(s).input_ids for _ in range(4)]
    state = s.state_dict()
    rest = [next(s).input_ids for _ in range(3)]
    s.close()
    t = BatchStream(BatchBuilder(train, info, cfg, seed=5), prefetch=0)
    t.load_state_dict(state)
    assert state["micro_batches"] == 4
    assert all(torch.equal(a, next(t).input_ids) for a in rest)
    assert not torch.equal(first[0], rest[0])


def test_epochs_wrap_and_reshuffle(corpus):
    info, train, _ = corpus
    cfg = get_preset("smoke").data
    b = BatchBuilder(train, info, cfg, seed=0)
    per_epoch = b.n_units // cfg.batch_size
    units, epochs = b.units(per_epoch + 1)
    assert (epochs >= 1).all() and np.unique(units).size == len(units)


def test_eval_set_is_fixed_and_large_enough(corpus):
    info, _, val = corpus
    cfg = get_preset("smoke").data
    a, b = build_eval_set(val, info, cfg), build_eval_set(val, info, cfg)
    assert all(torch.equal(x.input_ids, y.input_ids) for x, y in zip(a, b, strict=True))
    n_masked = sum(int((x.mlm_labels != -100).sum()) for x in a)
    n_seq = sum(len(x.input_ids) for x in a)
    assert n_masked >= cfg.eval_min_masked or n_seq == cfg.eval_max_sequences
    assert (a.n_masked, a.n_sequences) == (n_masked, n_seq)  # counted once, when built
    assert a.record(cfg)["masked_tokens"] == n_masked


def test_setup_is_fixed_and_progress_is_the_state_that_moves(tiny_corpus, tmp_path):
    """What is built once (``Setup``) cannot be replaced while training; one step advances only
    ``Progress`` (its counters and its interval's sums, whose keys are declared once)."""
    import dataclasses

    from zhbert.config import build_config
    from zhbert.training.build import build
    from zhbert.training.loop import train_step
    from zhbert.training.setup import Setup
    from zhbert.training.state import Interval, Progress, checkpoint_state

    cfg = build_config("smoke", overrides=[f"data.corpus_dir={tiny_corpus}",
                                           "optim.grad_accum=2"])
    s, p = build(cfg, tmp_path / "run", resume=False, overwrite=False, echo=lambda *_: None)
    try:
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.model = None
        assert {f.name for f in dataclasses.fields(Progress)} == {
            "interval", "step", "tokens_seen", "elapsed_before", "last_lr", "last_eval",
            "skip_streak", "planned_steps", "position", "pace_mark", "t0"}
        weights = [w.detach().clone() for w in s.model.parameters()]
        train_step(s, p)
        assert p.step == 1 and p.last_lr > 0
        assert p.interval.local("n_micro") == 2 and p.interval.local("n_steps") == 1
        assert any(not torch.equal(w, v) for w, v in zip(weights, s.model.parameters(),
                                                         strict=True))
        state = checkpoint_state(s, p)
        assert set(state["interval"]) == set(Interval.REDUCED + Interval.LOCAL)
        assert state["step"] == 1 and isinstance(s, Setup)
    finally:
        s.close()


def test_the_step_delay_test_hook_is_not_a_setting():
    from zhbert.config import build_config
    from zhbert.errors import UserError

    with pytest.raises(UserError, match="step_delay_s"):
        build_config("smoke", overrides=["run.step_delay_s=0.25"])
