"""Binary corpus format: writer and memory-mapped reader (described in docs/DATASET.md, "Output").

Per split: ``{split}.tokens.bin`` (flat token ids, uint16 or uint32), ``{split}.offsets.npy``
(int64, n+1), ``{split}.docs.npy`` (int32, n), ``{split}.word_starts.bin`` (uint8, one per token).
``corpus_meta.json`` holds the dtype, vocabulary size, special ids and a fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zhbert.errors import UserError
from zhbert.io_utils import read_json

FORMAT_VERSION = 1
SPLITS = ("train", "val")
_SPECIAL_KEYS = ("pad", "unk", "cls", "sep", "mask")


@dataclass(frozen=True, eq=False)
class CorpusSplit:
    """One split of a prepared corpus; ``tokens``/``word_starts`` are read-only memmaps."""

    tokens: np.ndarray
    offsets: np.ndarray
    docs: np.ndarray
    word_starts: np.ndarray

    def __len__(self) -> int:
        """Number of sentences."""
        return len(self.offsets) - 1

    def sentence(self, i: int) -> np.ndarray:
        """Token ids of sentence ``i`` (no special tokens)."""
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def sentence_word_starts(self, i: int) -> np.ndarray:
        """Word-start flags (1 = token begins a jieba word) of sentence ``i``."""
        return self.word_starts[self.offsets[i] : self.offsets[i + 1]]


@dataclass(frozen=True, eq=False)
class CorpusInfo:
    """Metadata of a prepared corpus directory."""

    path: Path
    vocab_size: int
    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    fingerprint: str
    stats: dict = field(default_factory=dict)
    dtype: str = "uint16"

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids of all special tokens (never masked, never drawn as random replacements)."""
        return (self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id)


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)


def _split_paths(directory: Path, split: str) -> dict[str, Path]:
    return {
        "tokens": directory / f"{split}.tokens.bin",
        "offsets": directory / f"{split}.offsets.npy",
        "docs": directory / f"{split}.docs.npy",
        "word_starts": directory / f"{split}.word_starts.bin",
    }


def split_file_names() -> list[str]:
    """The names of every split's files (what :func:`write_split` writes for each split)."""
    return [path.name for split in SPLITS for path in _split_paths(Path(), split).values()]


def write_split(
    directory,
    split: str,
    sentences_token_ids: Sequence[np.ndarray],
    docs: Sequence[int],
    word_starts: Sequence[np.ndarray],
    dtype,
) -> dict:
    """Write one split; return ``{"sentences", "tokens", "documents"}``.

    ``docs[i]`` is the document index of sentence ``i``; sentences of a document must be
    consecutive. ``word_starts[i]`` has the same length as ``sentences_token_ids[i]``.
    """
    directory = Path(directory)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if not (len(sentences_token_ids) == len(docs) == len(word_starts)):
        raise ValueError("sentences, docs and word_starts must have the same length")
    dtype = np.dtype(dtype)
    lengths = np.fromiter((len(s) for s in sentences_token_ids), dtype=np.int64,
                          count=len(sentences_token_ids))
    if any(len(w) != n for w, n in zip(word_starts, lengths, strict=True)):
        raise ValueError("word_starts must match the token count of each sentence")
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    paths = _split_paths(directory, split)
    empty = np.zeros(0, dtype=np.int64)
    tokens = np.concatenate([np.asarray(s) for s in sentences_token_ids]) if len(lengths) else empty
    if tokens.size and int(tokens.max()) > np.iinfo(dtype).max:
        raise ValueError(f"token id {int(tokens.max())} does not fit {dtype}")
    tokens.astype(dtype, copy=False).tofile(paths["tokens"])
    starts = np.concatenate([np.asarray(w) for w in word_starts]) if len(lengths) else empty
    starts.astype(np.uint8, copy=False).tofile(paths["word_starts"])
    np.save(paths["offsets"], offsets)
    doc_arr = np.asarray(docs, dtype=np.int32)
    np.save(paths["docs"], doc_arr)
    return {
        "sentences": int(len(lengths)),
        "tokens": int(offsets[-1]),
        "documents": int(len(np.unique(doc_arr))),
    }


def fingerprint(directory) -> str:
    """sha256 over vocab.txt and every split's binary files (names and bytes)."""
    directory = Path(directory)
    digest = hashlib.sha256()
    names = ["vocab.txt"] + [p.name for s in SPLITS for p in _split_paths(directory, s).values()]
    for name in names:
        path = directory / name
        if not path.is_file():
            continue
        digest.update(name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_corpus_info(directory) -> CorpusInfo:
    """Read corpus_meta.json and dataset_stats.json of a prepared corpus directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such corpus directory")
    meta = read_json(directory / "corpus_meta.json", "a prepared corpus file", obj=True,
                     hint="prepare the corpus first")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{directory / 'corpus_meta.json'}: format_version {meta.get('format_version')!r} "
            f"is not {FORMAT_VERSION}; prepare the corpus again"
        )
    try:
        ids = {k: int(meta["special_ids"][k]) for k in _SPECIAL_KEYS}
        vocab_size = int(meta["vocab_size"])
        dtype = str(np.dtype(meta["dtype"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{directory / 'corpus_meta.json'}: incomplete ({exc})") from None
    stats_path = directory / "dataset_stats.json"
    stats = read_json(stats_path, "corpus statistics", obj=True) if stats_path.exists() else {}
    return CorpusInfo(
        path=directory, vocab_size=vocab_size, pad_id=ids["pad"], unk_id=ids["unk"],
        cls_id=ids["cls"], sep_id=ids["sep"], mask_id=ids["mask"],
        fingerprint=str(meta.get("fingerprint", "")), stats=stats, dtype=dtype,
    )


def _check_token_ids(path: Path, tokens: np.ndarray, vocab_size: int) -> None:
    """UserError naming ``path`` and the first id when any token id is not below ``vocab_size``
    (one vectorised pass over the memory-mapped ids)."""
    if tokens.size == 0 or int(tokens.max()) < vocab_size:
        return
    where = int(np.argmax(tokens >= vocab_size))
    raise UserError(f"{path}: token id {int(tokens[where])} at position {where} is not below the "
                    f"vocabulary size {vocab_size} (corpus_meta.json); prepare the corpus again")


def load_split(directory, split: str) -> CorpusSplit:
    """Memory-map one split; UserError when files are missing or inconsistent, or a token id
    is outside the vocabulary."""
    directory = Path(directory)
    info = load_corpus_info(directory)
    paths = _split_paths(directory, split)
    for path in paths.values():
        if not path.is_file():
            raise UserError(f"{path}: missing (prepare the corpus again)")
    try:
        offsets = np.load(paths["offsets"])
        docs = np.load(paths["docs"])
    except (OSError, ValueError) as exc:
        raise UserError(f"{paths['offsets'].parent}: corrupt {split} split ({exc})") from None
    dtype = np.dtype(info.dtype)
    n_tokens = paths["tokens"].stat().st_size // dtype.itemsize
    problems = []
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != n_tokens:
        problems.append("offsets do not match the token file")
    if docs.shape != (len(offsets) - 1,):
        problems.append("docs length does not match the number of sentences")
    if paths["word_starts"].stat().st_size != n_tokens:
        problems.append("word_starts length does not match the token file")
    if problems:
        raise UserError(f"{directory}: corrupt {split} split ({'; '.join(problems)})")

    def memmap(path: Path, dt) -> np.ndarray:
        if n_tokens == 0:
            return np.zeros(0, dtype=dt)
        return np.memmap(path, dtype=dt, mode="r", shape=(n_tokens,))

    tokens = memmap(paths["tokens"], dtype)
    _check_token_ids(paths["tokens"], tokens, info.vocab_size)
    return CorpusSplit(
        tokens=tokens,
        offsets=offsets.astype(np.int64, copy=False),
        docs=docs.astype(np.int32, copy=False),
        word_starts=memmap(paths["word_starts"], np.uint8),
    )
