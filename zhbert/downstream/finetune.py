"""Fine-tune an export or a checkpoint on a downstream task: a plain PyTorch loop.

AdamW (:func:`zhbert.training.optim.make_optimizer`: no decay on biases and norms), linear warmup
then linear decay (:func:`zhbert.lr_schedule.lr_factor`), gradient clipping, the CPU precision
rule of the trainer (:func:`zhbert.training.precision.choose_precision`: bf16 autocast only where
native and measured faster, else fp32). Dev is scored every ``eval_every`` updates (and at the
end of each epoch and of training); the weights of the best dev score are kept in memory, and
test is scored with them. Everything random (the head's initialisation, a random init, the batch
order, dropout) follows ``seed``; the subsampling of the splits follows ``data_seed``.

How characters become tokens, and how long sentences are windowed: :mod:`zhbert.downstream.encode`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, replace

import torch

from zhbert.config import OptimConfig
from zhbert.downstream import encode as E
from zhbert.downstream.source import ModelSource, load_task_model, load_tokenizer
from zhbert.errors import UserError
from zhbert.lr_schedule import lr_factor
from zhbert.training.optim import make_optimizer
from zhbert.training.precision import choose_precision
from zhbert.training.setup import autocast_factory, make_scaler

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class FinetuneConfig:
    """The fine-tuning budget and settings (``examples/finetune.py`` flags of the same names)."""

    init: str = "pretrained"  # "pretrained" or "random" (same architecture, untrained)
    epochs: int = 3  # passes over the train split
    max_steps: int = 0  # this many updates, over as many epochs as needed (0: epochs decide)
    batch_size: int = 32
    lr: float = 1e-3  # peak learning rate
    warmup: float = 0.1  # fraction of the updates spent warming up
    weight_decay: float = 0.01
    clip_norm: float = 1.0  # max global gradient norm (0: no clipping)
    max_length: int | None = None  # tokens per input with [CLS], [SEP] (None: the model's, <= 128)
    eval_every: int = 0  # score dev every this many updates (0: once per epoch)
    eval_batch_size: int = 64
    train_limit: int | None = None  # examples taken from each split (None: all)
    dev_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0
    data_seed: int = 0  # which examples a limit keeps
    precision: str = "auto"  # "auto", "fp32" or "bf16"
    device: str = "cpu"
    pooling: str = "auto"  # sequence tasks: "cls", "mean", or "auto" (see POOLING_HELP)


#: what --pooling means (docs/DOWNSTREAM.md)
POOLING_HELP = ("how a sequence task reads the encoder: cls (the [CLS] vector; BERT through its "
                "pooler) or mean (the mean over the text's tokens; ModernBERT only); auto: mean "
                "for ModernBERT, whose pretraining never trains [CLS] for a sentence task, cls "
                "for BERT, where transformers has no other head")

#: the default --max-length when the model allows more
DEFAULT_MAX_LENGTH = 128


def resolve_config(cfg: FinetuneConfig, source: ModelSource) -> FinetuneConfig:
    """``cfg`` checked against the model, with ``max_length`` filled in; UserError for a setting
    that cannot run."""
    limit = source.config.max_position_embeddings
    if cfg.max_length is None:
        cfg = replace(cfg, max_length=min(DEFAULT_MAX_LENGTH, limit))
    positive = {"epochs": cfg.epochs, "batch_size": cfg.batch_size,
                "eval_batch_size": cfg.eval_batch_size, "train_limit": cfg.train_limit,
                "dev_limit": cfg.dev_limit, "test_limit": cfg.test_limit}
    for name, value in positive.items():
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1 (got {value})")
    for name in ("max_steps", "eval_every", "clip_norm", "weight_decay"):
        if getattr(cfg, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0 (got {getattr(cfg, name)})")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise UserError(f"--lr must be a positive number (got {cfg.lr})")
    if not 0 <= cfg.warmup < 1:
        raise UserError(f"--warmup is a fraction of the updates in [0, 1) (got {cfg.warmup})")
    if not 3 <= cfg.max_length <= limit:
        raise UserError(f"--max-length must be in [3, {limit}] for {source.path} (its "
                        f"max_position_embeddings; got {cfg.max_length})")
    if cfg.pooling not in ("auto", "cls", "mean"):
        raise UserError(f"--pooling must be auto, cls or mean (got {cfg.pooling!r})")
    modern = source.config.arch == "modern"
    if cfg.pooling == "auto":
        cfg = replace(cfg, pooling="mean" if modern else "cls")
    elif cfg.pooling == "mean" and not modern:
        raise UserError(f"--pooling mean: {source.path} is a BERT export, whose sequence head in "
                        "transformers pools [CLS] only (use --pooling cls)")
    if cfg.init not in ("pretrained", "random"):
        raise UserError(f"--init must be pretrained or random (got {cfg.init!r})")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return cfg


def load_splits(task, cfg: FinetuneConfig) -> dict[str, list]:
    """The task's train / dev / test examples, subsampled by the limits (``data_seed``)."""
    limits = {"train": cfg.train_limit, "dev": cfg.dev_limit, "test": cfg.test_limit}
    data = {s: task.load(s, limit=limits[s], seed=cfg.data_seed) for s in SPLITS}
    for split, examples in data.items():
        if not examples:
            raise UserError(f"task {task.name}: the {split} split is empty")
    return data


def encode_split(task, examples, tokenizer, cfg: FinetuneConfig, train: bool) -> list[E.Item]:
    """Model inputs of one split: back-to-back windows for training, overlapping for scoring."""
    if task.kind == "sequence":
        return E.sequence_items(examples, tokenizer, cfg.max_length)
    size = cfg.max_length - 2
    tag_ids = {t: i for i, t in enumerate(task.labels)}
    unknown = {t for ex in examples for t in ex.tags} - set(tag_ids)
    if unknown:
        raise UserError(f"task {task.name}: tags {sorted(unknown)[:5]} are not in its labels")
    return E.token_items(examples, E.char_lookup(tokenizer), tag_ids, tokenizer.cls_token_id,
                         tokenizer.sep_token_id, cfg.max_length,
                         stride=size if train else max(1, size // 2))


@torch.no_grad()
def predict(model, task, examples, items, tokenizer, cfg: FinetuneConfig, autocast) -> list:
    """Predicted label ints (sequence task) or tag-string lists (token task) of ``examples``."""
    model.eval()
    device = torch.device(cfg.device)
    predicted: list = [None] * len(items)
    for batch in E.eval_batches(items, cfg.eval_batch_size):
        inputs = E.collate([items[k] for k in batch], tokenizer.pad_token_id)
        with autocast() if autocast else contextlib.nullcontext():
            logits = model(input_ids=inputs["input_ids"].to(device),
                           attention_mask=inputs["attention_mask"].to(device)).logits
        best = logits.float().argmax(-1).cpu()
        for row, k in enumerate(batch):
            predicted[k] = int(best[row]) if task.kind == "sequence" else \
                best[row, 1:len(items[k].ids) - 1].tolist()
    if task.kind == "sequence":
        return predicted
    return E.assemble_tags(examples, items, predicted, task.labels)


def _score(task, model, split: tuple, tokenizer, cfg, autocast) -> dict:
    examples, items = split
    pred = predict(model, task, examples, items, tokenizer, cfg, autocast)
    return task.score(task.gold(examples), pred)


def _bar(total: int, progress: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False,
                dynamic_ncols=True)


def _update(model, optimizer, scaler, autocast, inputs: dict, lr: float, clip: float):
    """One optimizer update on one batch at learning rate ``lr``; returns the loss."""
    with autocast() if autocast else contextlib.nullcontext():
        loss = model(**inputs).loss
    (scaler.scale(loss) if scaler else loss).backward()
    if scaler:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf)
    for group in optimizer.param_groups:
        group["lr"] = lr
    scaler.step(optimizer) if scaler else optimizer.step()
    if scaler:
        scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss


def planned_updates(n_items: int, cfg: FinetuneConfig) -> int:
    """``max_steps`` when set (as many epochs as it takes), else ``epochs`` full passes.

    >>> planned_updates(100, FinetuneConfig(epochs=2)), planned_updates(100, FinetuneConfig(max_steps=5))
    (8, 5)
    """
    return cfg.max_steps or cfg.epochs * math.ceil(n_items / cfg.batch_size)


def train(model, task, data: dict, tokenizer, cfg: FinetuneConfig, precision: str,
          progress: bool = False) -> dict:
    """Fine-tune ``model`` in place; it ends holding the best dev weights. Returns the record:
    updates, best update, its dev scores, the dev curve, seconds."""
    device = torch.device(cfg.device)
    autocast, scaler = autocast_factory(precision, device), make_scaler(precision, device)
    optimizer = make_optimizer(model, OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay),
                               device)
    items = data["train"][1]
    total = planned_updates(len(items), cfg)
    warmup = round(cfg.warmup * total)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, curve, best, eval_s, t0 = 0, [], None, 0.0, time.perf_counter()

    def evaluate() -> None:
        nonlocal best, eval_s
        t = time.perf_counter()
        dev = _score(task, model, data["dev"], tokenizer, cfg, autocast)
        eval_s += time.perf_counter() - t
        curve.append({"step": step, "dev": dev["score"]})
        if best is None or dev["score"] > best["dev"]["score"]:
            best = {"step": step, "dev": dev,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        model.train()

    model.train()
    with _bar(total, progress, f"{task.name} fine-tune") as bar:
        while step < total:
            for batch in E.train_batches(items, cfg.batch_size, gen):
                inputs = {k: v.to(device) for k, v in
                          E.collate([items[k] for k in batch], tokenizer.pad_token_id).items()}
                lr = cfg.lr * lr_factor(step + 1, warmup, total, "linear")
                loss = _update(model, optimizer, scaler, autocast, inputs, lr, cfg.clip_norm)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if step == total or (cfg.eval_every and step % cfg.eval_every == 0):
                    evaluate()
                if step == total:
                    break
            if not cfg.eval_every and (not curve or curve[-1]["step"] != step):
                evaluate()  # end of an epoch
    model.load_state_dict(best["state"])
    train_s = time.perf_counter() - t0 - eval_s
    return {"updates": step, "best_step": best["step"], "dev": best["dev"], "dev_curve": curve,
            "seconds": {"train": round(train_s, 2), "dev": round(eval_s, 2),
                        "per_update": round(train_s / max(step, 1), 4)}}


def finetune(task, source: ModelSource, cfg: FinetuneConfig, progress: bool = False):
    """``(model, tokenizer, result)``: the fine-tuned model (best dev weights) and the result
    dict of ``result.json`` (without the model path and versions, which the caller adds)."""
    cfg = resolve_config(cfg, source)
    t0, c0 = time.perf_counter(), time.process_time()
    tokenizer = load_tokenizer(source)
    examples = load_splits(task, cfg)
    data = {s: (ex, encode_split(task, ex, tokenizer, cfg, train=s == "train"))
            for s, ex in examples.items()}
    device = torch.device(cfg.device)
    choice = choose_precision(cfg.precision, device, source.config,
                              tokens=cfg.batch_size * cfg.max_length)
    model = load_task_model(source, task.kind, tuple(task.labels), cfg.init, cfg.seed,
                            pooling=cfg.pooling).to(device)
    setup_s = time.perf_counter() - t0
    record = train(model, task, data, tokenizer, cfg, choice.precision, progress)
    t = time.perf_counter()
    test = _score(task, model, data["test"], tokenizer, cfg, autocast_factory(choice.precision,
                                                                                device))
    seconds = {"setup": round(setup_s, 2), **record["seconds"],
               "test": round(time.perf_counter() - t, 2)}
    result = {
        "task": task.name, "metric": task.metric, "init": cfg.init, "seed": cfg.seed,
        "kind": source.kind, "arch": source.config.arch,
        "pretrain_step": 0 if cfg.init == "random" else source.step,
        "updates": record["updates"], "best_step": record["best_step"],
        "dev": record["dev"], "test": test, "dev_curve": record["dev_curve"],
        "examples": {s: len(ex) for s, ex in examples.items()},
        "windows": {s: len(items) for s, (_, items) in data.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "precision": choice.record(), "config": asdict(cfg),
        "time_s": round(time.perf_counter() - t0, 2), "seconds": seconds,
        "cpu_s": round(time.process_time() - c0, 2), "threads": torch.get_num_threads(),
    }
    return model, tokenizer, result


__all__ = ["DEFAULT_MAX_LENGTH", "FinetuneConfig", "resolve_config", "encode_split", "finetune",
           "load_splits", "predict", "train"]
