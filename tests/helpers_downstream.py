"""Tiny exports, checkpoints and fake tasks for the fine-tuning tests (offline, seconds)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from tests.helpers_model import CHARS, make_tokenizer_dir, tiny_config, vocab_size_of

PEOPLE = set("我你他她")


@dataclass(frozen=True)
class TokenExample:
    chars: tuple[str, ...]
    tags: tuple[str, ...]


@dataclass(frozen=True)
class TextExample:
    text: str
    label: int


def _accuracy(gold: list, pred: list) -> dict:
    flat = [(g, p) for gs, ps in zip(gold, pred, strict=True)
            for g, p in (zip(gs, ps, strict=True) if isinstance(gs, list) else [(gs, ps)])]
    return {"score": sum(g == p for g, p in flat) / max(1, len(flat)), "n": len(flat)}


@dataclass(frozen=True)
class FakeTask:
    """A task of the registry's interface over random sentences of the tiny vocabulary:
    ``token`` tags the people characters S-PER; ``sequence`` labels a text 1 when it has 好."""

    name: str
    kind: str
    labels: tuple[str, ...]
    metric: str = "accuracy"
    description: str = "a fake task for tests"
    sizes: tuple[int, int, int] = (20, 8, 8)
    length: tuple[int, int] = (3, 14)

    def load(self, split: str, limit: int | None = None, seed: int = 0) -> list:
        n = self.sizes[("train", "dev", "test").index(split)]
        rng = random.Random(f"{self.name}-{split}")
        alphabet = [*CHARS, "。", "Ｘ", " "]  # a full-width letter and a space (both [UNK])
        out = []
        for _ in range(n):
            chars = tuple(rng.choice(alphabet) for _ in range(rng.randint(*self.length)))
            if self.kind == "token":
                out.append(TokenExample(chars, tuple("S-PER" if c in PEOPLE else "O"
                                                     for c in chars)))
            else:
                out.append(TextExample("".join(chars), int("好" in chars)))
        if limit is not None and limit < len(out):
            out = random.Random(seed).sample(out, limit)
        return out

    def score(self, gold: list, pred: list) -> dict:
        return _accuracy(gold, pred)

    def gold(self, examples: list) -> list:
        return [list(e.tags) if self.kind == "token" else e.label for e in examples]


TOKEN_TASK = FakeTask("faketag", "token", ("O", "S-PER"))
SEQUENCE_TASK = FakeTask("fakecls", "sequence", ("neg", "pos"))


def tiny_model(arch: str, vocab: int, seed: int = 0, **overrides):
    """A tiny BERT or modern model with perturbed weights (a 'pretrained' one)."""
    from zhbert.models import build_model

    torch.manual_seed(seed)
    extra = {"layer_norm_eps": 1e-5} if arch == "modern" else {}
    model = build_model(tiny_config(vocab, arch=arch, **extra, **overrides))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def make_export(root: Path, arch: str, history_step: int | None = 7) -> Path:
    """``root/run/final`` as training leaves it (with a one-point history when ``history_step``)."""
    import json

    from zhbert.export import export_hf

    tok = make_tokenizer_dir(root / "tok")
    run = root / "run"
    out = export_hf(tiny_model(arch, vocab_size_of(tok)), tok, run / "final")
    if history_step is not None:
        (run / "training_history.json").write_text(json.dumps({"steps": [history_step]}))
    return out


def make_checkpoint(root: Path, arch: str, step: int = 5, extra_vocab: int = 0) -> Path:
    """``root/run/checkpoints/step_<step>`` as the trainer writes it; ``extra_vocab`` gives the
    tokenizer that many more tokens than the model has embedding rows."""
    from zhbert.config import TrainConfig
    from zhbert.training.checkpoint import save_checkpoint

    tok = make_tokenizer_dir(root / "tok")
    model = tiny_model(arch, vocab_size_of(tok))
    cfg = TrainConfig(model=model.config).to_dict()
    if extra_vocab:
        tok = make_tokenizer_dir(root / "tok_big", extra=extra_vocab)
    return save_checkpoint(root / "run", step, model, cfg, {"step": step}, tok)
