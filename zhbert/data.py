"""Training and held-out batches from a prepared corpus (memmaps, vectorised numpy).

Every training micro-batch is a pure function of ``(seed, rank, g)`` where ``g`` is the global
micro-batch index. That makes the data order, the NSP pairing and the MLM masks reproducible,
different on every rank under DDP, and trivially resumable: the sampler state saved in a
checkpoint is just the number of micro-batches consumed.

Two formats:

* ``pairs`` — ``[CLS] A [SEP] B [SEP] [PAD]...``: sentence A has a next sentence in its document;
  B is that next sentence (50%, NSP label 0) or a random sentence of another document (label 1);
  the pair is truncated longest-first to ``seq_len`` and padded (attention mask 0 on padding).
* ``packed`` — ``[CLS] <seq_len-2 consecutive corpus tokens> [SEP]``: no padding, for MLM only.
  The block grid is shifted and shuffled afresh every epoch.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from zhbert.config import DataConfig
from zhbert.corpus.binary import CorpusInfo, CorpusSplit
from zhbert.errors import UserError
from zhbert.layout import IGNORE_INDEX, BatchLayout, batch_layout, trim_to
from zhbert.masking import mask_tokens

NSP_IS_NEXT, NSP_RANDOM = 0, 1  # transformers' convention for next_sentence_label


@dataclass
class Batch:
    """One micro-batch, masks already applied (CPU tensors)."""

    input_ids: torch.Tensor  # (B, L) int64, masked
    attention_mask: torch.Tensor  # (B, L) int64, 1 = real token
    token_type_ids: torch.Tensor  # (B, L) int64
    mlm_labels: torch.Tensor  # (B, L) int64, -100 where not predicted
    nsp_labels: torch.Tensor | None  # (B,) int64 or None
    n_tokens: int  # real (non-pad) tokens
    layout: BatchLayout | None = None  # host-side index bookkeeping (see prepare_batch)

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device``; copies to a GPU are asynchronous (pin the batch first)."""
        nb = device.type == "cuda"

        def move(t):
            return None if t is None else t.to(device, non_blocking=nb)

        return Batch(move(self.input_ids), move(self.attention_mask), move(self.token_type_ids),
                     move(self.mlm_labels), move(self.nsp_labels), self.n_tokens,
                     None if self.layout is None else self.layout.to(device, nb))


def prepare_batch(batch: Batch, *, with_cls: bool, packed: bool, multiple: int = 1,
                  pin: bool = False) -> Batch:
    """``batch`` trimmed to its used columns (rounded up to ``multiple``), with its layout.

    The loop runs this in the prefetch thread so that the forward pass does no host-device
    synchronisation (``zhbert.layout``). ``packed`` batches have no padding (no attention mask
    is passed to the model); ``pin`` puts everything in page-locked memory so that
    ``Batch.to(cuda)`` copies asynchronously.
    """
    mask = None if packed else batch.attention_mask
    layout = batch_layout(batch.input_ids, mask, batch.mlm_labels, with_cls=with_cls,
                          multiple=multiple)
    ids, att, types, labels = trim_to(layout.length, batch.input_ids, batch.attention_mask,
                                      batch.token_type_ids, batch.mlm_labels)
    out = Batch(ids, att, types, labels, batch.nsp_labels, batch.n_tokens, layout)
    if pin:
        pinned = [None if t is None else t.pin_memory()
                  for t in (ids, att, types, labels, batch.nsp_labels)]
        out = Batch(*pinned, batch.n_tokens, layout.pin_memory())
    return out


# The independent random streams derived from ``run.seed``: each use draws from its own stream
# (never reuse a number: two uses of one stream would be correlated).
STREAM_EPOCH_ORDER = 1  # permutation of the training units in one epoch
STREAM_MASKS = 2  # MLM masks of one batch (per rank, per batch index)
STREAM_PACK_SHIFT = 3  # offset of the packed blocks in one epoch
STREAM_NSP_PAIRS = 4  # NSP partner sentences of one batch (per rank, per batch index)
STREAM_DROPOUT = 5  # dropout of a fresh run (per rank)
STREAM_DROPOUT_RESHARDED = 6  # dropout after a resume with another world size (per rank, step)


def stream_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (stable across processes and versions); call it as
    ``stream_seed(run_seed, STREAM_..., *indices)``."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


def _gather(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """Rows ``flat[starts[i]:starts[i]+lengths[i]]`` left-aligned in a (n, width) int64 array."""
    cols = np.arange(width)
    valid = cols[None, :] < lengths[:, None]
    idx = np.where(valid, starts[:, None] + cols[None, :], 0)
    return np.where(valid, np.asarray(flat[idx.ravel()]).reshape(idx.shape).astype(np.int64), 0)


class BatchBuilder:
    """Builds micro-batch ``g`` for one rank; stateless apart from a permutation cache."""

    def __init__(self, split: CorpusSplit, info: CorpusInfo, cfg: DataConfig, *, seed: int,
                 rank: int = 0, world_size: int = 1, batch_size: int | None = None,
                 mask_rate: float | None = None, whole_word: bool | None = None,
                 name: str = "train"):
        self.split, self.info, self.cfg = split, info, cfg
        self.seed, self.rank, self.world = int(seed), int(rank), int(world_size)
        self.batch_size = batch_size or cfg.batch_size
        self.mask_rate = cfg.mask_rate if mask_rate is None else mask_rate
        self.whole_word = cfg.whole_word_mask if whole_word is None else whole_word
        self.L = cfg.seq_len
        self._perm_cache: dict[int, np.ndarray] = {}
        if cfg.format == "packed":
            self.block = self.L - 2
            n_tok = len(split.tokens)
            self.n_units = (n_tok - self.block) // self.block  # room for the per-epoch shift
        else:
            docs = np.asarray(split.docs)
            self.candidates = np.flatnonzero(docs[1:] == docs[:-1]).astype(np.int64)
            self.n_units = len(self.candidates)
            self.docs = docs
            self.offsets = np.asarray(split.offsets)
            if len(np.unique(docs[: 100_000])) < 2 and self.n_units:
                raise UserError(f"{info.path}: {name} split has one document; NSP needs several")
        if self.n_units < 1:
            raise UserError(f"{info.path}: the {name} split is too small for data.format="
                            f"{cfg.format} at data.seq_len={self.L}")

    # -- ordering ------------------------------------------------------------------------
    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 2:
                self._perm_cache.clear()
            rng = np.random.default_rng(stream_seed(self.seed, STREAM_EPOCH_ORDER, epoch))
            self._perm_cache[epoch] = rng.permutation(self.n_units)
        return self._perm_cache[epoch]

    def units(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """(unit index, epoch) of the examples of micro-batch ``g`` on this rank."""
        first = (g * self.world + self.rank) * self.batch_size
        ex = first + np.arange(self.batch_size, dtype=np.int64)
        epochs, pos = ex // self.n_units, ex % self.n_units
        out = np.empty_like(ex)
        for ep in np.unique(epochs):
            sel = epochs == ep
            out[sel] = self._perm(int(ep))[pos[sel]]
        return out, epochs

    # -- construction --------------------------------------------------------------------
    def build(self, g: int) -> Batch:
        """Micro-batch ``g`` (a pure function of seed, rank and g)."""
        units, epochs = self.units(g)
        if self.cfg.format == "packed":
            ids, ws, att, tt = self._packed(units, epochs)
            nsp = None
        else:
            ids, ws, att, tt, nsp = self._pairs(units, g)
        gen = torch.Generator().manual_seed(stream_seed(self.seed, STREAM_MASKS, self.rank, g))
        inp = torch.from_numpy(ids)
        masked, labels = mask_tokens(
            inp, mask_token_id=self.info.mask_id, special_ids=self.info.special_ids,
            vocab_size=self.info.vocab_size, mask_rate=self.mask_rate,
            word_starts=torch.from_numpy(ws) if self.whole_word else None, generator=gen)
        att_t = torch.from_numpy(att)
        return Batch(masked, att_t, torch.from_numpy(tt), labels,
                     None if nsp is None else torch.from_numpy(nsp), int(att.sum()))

    def _packed(self, units: np.ndarray, epochs: np.ndarray):
        b, n = self.block, len(units)
        shift_of = {int(e): int(np.random.default_rng(stream_seed(self.seed, STREAM_PACK_SHIFT, int(e))).integers(b))
                    for e in np.unique(epochs)}
        shifts = np.array([shift_of[int(e)] for e in epochs], np.int64)
        starts = shifts + units * b
        lengths = np.full(n, b)
        body = _gather(self.split.tokens, starts, lengths, b)
        wbody = _gather(self.split.word_starts, starts, lengths, b)
        ids = np.empty((n, self.L), np.int64)
        ids[:, 0], ids[:, -1], ids[:, 1:-1] = self.info.cls_id, self.info.sep_id, body
        ws = np.ones((n, self.L), np.uint8)
        ws[:, 1:-1] = wbody
        ws[:, 1] = 1  # a block may start mid-word; treat it as a word start
        return ids, ws, np.ones((n, self.L), np.int64), np.zeros((n, self.L), np.int64)

    def _random_other_doc(self, a: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
        n_sent = len(self.docs)
        other = rng.integers(n_sent, size=len(a))
        clash = self.docs[other] == self.docs[a]
        for _ in range(10):  # redraw the few that landed in A's own document
            if not clash.any():
                break
            other[clash] = rng.integers(n_sent, size=int(clash.sum()))
            clash = self.docs[other] == self.docs[a]
        return other, clash

    def _pairs(self, units: np.ndarray, g: int):
        rng = np.random.default_rng(stream_seed(self.seed, STREAM_NSP_PAIRS, self.rank, g))
        a = self.candidates[units]
        is_next = rng.random(len(a)) < 0.5
        other, clash = self._random_other_doc(a, rng)
        is_next |= clash  # could not find another document: use the true next sentence
        bidx = np.where(is_next, a + 1, other)
        off = self.offsets
        la, lb = off[a + 1] - off[a], off[bidx + 1] - off[bidx]
        la, lb = _truncate_longest_first(la, lb, self.L - 3)
        return self._assemble(off[a], la, off[bidx], lb) + (
            np.where(is_next, NSP_IS_NEXT, NSP_RANDOM).astype(np.int64),)

    def _assemble(self, sa, la, sb, lb):
        """[CLS] A [SEP] B [SEP] [PAD]... with segment ids and attention mask, vectorised."""
        L, info = self.L, self.info
        toks, wst = self.split.tokens, self.split.word_starts
        A, WA = _gather(toks, sa, la, L), _gather(wst, sa, la, L)
        B, WB = _gather(toks, sb, lb, L), _gather(wst, sb, lb, L)
        pos = np.arange(L)[None, :]
        la_, lb_ = la[:, None], lb[:, None]
        in_a = (pos >= 1) & (pos < 1 + la_)
        in_b = (pos >= 2 + la_) & (pos < 2 + la_ + lb_)
        total = 3 + la_ + lb_
        ai = np.clip(pos - 1, 0, L - 1).repeat(len(la), 0)
        bi = np.clip(pos - 2 - la_, 0, L - 1)
        take = np.take_along_axis
        ids = np.full((len(la), L), info.pad_id, np.int64)
        ids = np.where(in_a, take(A, ai, 1), ids)
        ids = np.where(in_b, take(B, bi, 1), ids)
        ids[:, 0] = info.cls_id
        ids = np.where((pos == 1 + la_) | (pos == total - 1), info.sep_id, ids)
        ws = np.where(in_a, take(WA, ai, 1), np.where(in_b, take(WB, bi, 1), 1)).astype(np.uint8)
        att = (pos < total).astype(np.int64)
        tt = ((pos >= 2 + la_) & (pos < total)).astype(np.int64)
        return ids, ws, att, tt


def _truncate_longest_first(la: np.ndarray, lb: np.ndarray, m: int):
    """Lengths after removing tokens from the longer of A/B until ``la + lb <= m``."""
    la, lb = la.astype(np.int64), lb.astype(np.int64)
    over = la + lb > m
    short = np.minimum(la, lb)
    half_a = np.where(la > lb, (m + 1) // 2, m // 2)
    new_a = np.where(short <= m // 2, np.where(la <= lb, la, m - lb), half_a)
    new_a = np.clip(new_a, 0, la)
    new_b = np.minimum(lb, m - new_a)
    return np.where(over, new_a, la), np.where(over, new_b, lb)


class BatchStream:
    """Resumable iterator of training micro-batches, optionally built ahead in a thread.

    The state is the number of micro-batches *consumed* (not merely prefetched), so saving it in
    a checkpoint and restoring it reproduces the exact remaining sequence of batches.
    """

    def __init__(self, builder: BatchBuilder, prefetch: int = 0, start: int = 0,
                 prepare: Callable[[Batch], Batch] | None = None):
        self.builder, self.prefetch = builder, int(prefetch)
        self.prepare = prepare  # applied to each batch where it is built (e.g. prepare_batch)
        self.consumed = int(start)
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state_dict(self) -> dict:
        return {"micro_batches": self.consumed, "rank": self.builder.rank,
                "world_size": self.builder.world, "seed": self.builder.seed}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.consumed = int(state["micro_batches"])

    def _build(self, g: int) -> Batch:
        batch = self.builder.build(g)
        return batch if self.prepare is None else self.prepare(batch)

    def _produce(self, start: int) -> None:
        g = start
        while not self._stop.is_set():
            try:
                item = self._build(g)
            except BaseException as exc:  # hand the error to the consumer
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            g += 1

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self.prefetch <= 0:
            batch = self._build(self.consumed)
        else:
            if self._thread is None:
                self._stop.clear()
                self._queue = queue.Queue(maxsize=self.prefetch)
                self._thread = threading.Thread(target=self._produce, args=(self.consumed,),
                                                daemon=True, name="zhbert-prefetch")
                self._thread.start()
            batch = self._queue.get()
            if isinstance(batch, BaseException):
                raise batch
        self.consumed += 1
        return batch

    def close(self) -> None:
        """Stop the prefetch thread (batches already built are dropped, not consumed)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            self._queue = None


@dataclass(frozen=True)
class EvalSet:
    """The fixed held-out set and its size, counted once when it is built.

    Iterates over its batches (a sequence of :class:`Batch`).
    """

    batches: list[Batch]
    n_sequences: int
    n_masked: int
    min_masked: int  # data.eval_min_masked: what was asked for

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]

    @property
    def capped(self) -> bool:
        """Whether ``eval_max_sequences`` or the val split stopped the set short."""
        return self.n_masked < self.min_masked

    def mapped(self, fn: Callable[[Batch], Batch]) -> EvalSet:
        """The same set with ``fn`` applied to every batch (the loop's ``prepare_batch``)."""
        return EvalSet([fn(b) for b in self.batches], self.n_sequences, self.n_masked,
                       self.min_masked)

    def record(self, cfg: DataConfig) -> dict:
        """What the history's ``meta.eval`` says about the set actually built.

        ``stderr_max`` is the largest standard error any accuracy can have on it,
        ``sqrt(0.25 / n_masked)``; ``capped`` is true when ``eval_max_sequences`` or the size of
        the val split stopped the set before it held ``eval_min_masked`` masked tokens.
        """
        n = self.n_masked
        return {"sequences": self.n_sequences, "masked_tokens": n,
                "min_masked_requested": self.min_masked, "capped": self.capped,
                "stderr_max": round(math.sqrt(0.25 / n), 6) if n else None,
                "mask_rate": cfg.eval_mask_rate, "seed": cfg.eval_seed}

    def cap_warning(self, cfg: DataConfig) -> str:
        """The one-line warning printed when the set is smaller than requested."""
        n = self.n_masked
        bound = f"{math.sqrt(0.25 / n):.2%}" if n else "undefined"
        return (f"the held-out set holds only {n} masked tokens in {self.n_sequences} sequences "
                f"(data.eval_min_masked={self.min_masked}): capped by "
                f"data.eval_max_sequences={cfg.eval_max_sequences} or the size of the val split; "
                f"the standard error of held-out accuracy can reach {bound}")


def build_eval_set(split: CorpusSplit, info: CorpusInfo, cfg: DataConfig) -> EvalSet:
    """The fixed held-out set: batches of the val split with fixed masks (``eval_seed``).

    Batches are added until at least ``eval_min_masked`` tokens are masked (10,000 gives a
    standard error <= 0.5 points) or ``eval_max_sequences`` / the split is exhausted, whichever
    comes first (the trainer then warns, see :meth:`EvalSet.cap_warning`). Masks are
    per token at ``eval_mask_rate`` (never whole-word), so every preset is scored the same way.
    """
    builder = BatchBuilder(split, info, cfg, seed=cfg.eval_seed, batch_size=cfg.eval_batch_size,
                           mask_rate=cfg.eval_mask_rate, whole_word=False, name="val")
    max_seq = min(cfg.eval_max_sequences, builder.n_units)
    batches, n_seq, n_masked, g = [], 0, 0, 0
    while n_seq < max_seq and n_masked < cfg.eval_min_masked:
        b = builder.build(g)
        keep = min(len(b.input_ids), max_seq - n_seq)
        if keep < len(b.input_ids):
            b = Batch(b.input_ids[:keep], b.attention_mask[:keep], b.token_type_ids[:keep],
                      b.mlm_labels[:keep], None if b.nsp_labels is None else b.nsp_labels[:keep],
                      int(b.attention_mask[:keep].sum()))
        batches.append(b)
        n_seq += keep
        n_masked += int((b.mlm_labels != IGNORE_INDEX).sum())
        g += 1
    return EvalSet(batches, n_seq, n_masked, cfg.eval_min_masked)
