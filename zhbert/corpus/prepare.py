"""The corpus preparation pipeline: read, clean, split, filter, dedup, vocab, binarise, stats."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from zhbert.corpus import binary, sources, wiki
from zhbert.corpus import vocab as vocab_mod
from zhbert.corpus.encode import encode_sentences
from zhbert.corpus.text import normalize_text, sentence_filter_reason, split_sentences
from zhbert.errors import UserError
from zhbert.io_utils import (
    atomic_dir,
    atomic_write_json,
    no_space_is_user_error,
    require_file,
)
from zhbert.taskdata import heldout as heldout_mod

FILTERS = ("too_short", "too_long", "kana_hangul", "low_han_share", "heldout", "duplicate")
#: warn when more than this share of the split sentences is Japanese or Korean
FOREIGN_WARN_SHARE = 0.2
#: every file a preparation writes into its directory: all that ``--overwrite`` may replace
OUTPUT_FILES = frozenset({*vocab_mod.TOKENIZER_FILES, *binary.split_file_names(),
                          "corpus_meta.json", "dataset_stats.json"})
#: at most this many foreign names are listed in the refusal of ``--overwrite``
MAX_NAMED = 5


@dataclass
class PrepareOptions:
    """Every knob of the pipeline (the CLI flags map one to one)."""

    min_length: int = 30  # characters, like the original study's 30-100 character sentences
    max_length: int = 100
    min_han_share: float = 0.5
    max_kana_hangul_share: float = 0.1  # drop sentences with more kana/hangul (Japanese, Korean)
    val_fraction: float = 0.05
    min_val_sentences: int = 3000  # so that evaluation has >= 20k masked tokens (capped at 20%)
    seed: int = 0
    min_char_freq: int = 2
    max_chars: int | None = None  # the paper configuration keeps 10,049 characters
    max_wordpieces: int = 1000
    lowercase: bool = True
    text_field: str = "text"
    text_docs: str = "blank_line"  # or "line"
    max_documents: int | None = None
    t2s: bool | None = None  # None: traditional->simplified only for the wiki source
    heldout_guard: bool | None = None  # drop the tasks' dev/test sentences; None: demo source only
    jieba_hmm: bool = False  # dictionary-only segmentation: ~25% faster, see DATASET.md
    workers: int = 2  # processes for wiki markup removal (1: in the main process)
    overwrite: bool = False

    def validate(self) -> None:
        """UserError on an invalid combination of values."""
        if self.min_length < 1 or self.max_length < self.min_length:
            raise UserError(f"length range {self.min_length}-{self.max_length} is invalid")
        if not 0.0 <= self.min_han_share <= 1.0:
            raise UserError(f"min Han share {self.min_han_share} must be within 0..1")
        if not 0.0 <= self.max_kana_hangul_share <= 1.0:
            raise UserError(f"max kana/hangul share {self.max_kana_hangul_share} must be "
                            "within 0..1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"val fraction {self.val_fraction} must be within 0..1")
        if self.min_char_freq < 1 or (self.max_chars is not None and self.max_chars < 1):
            raise UserError("--min-char-freq and --max-chars must be positive")
        if self.max_documents is not None and self.max_documents < 1:
            raise UserError(f"max documents {self.max_documents} must be positive")
        if self.workers < 1:
            raise UserError(f"workers {self.workers} must be at least 1")
        if self.text_docs not in ("blank_line", "line"):
            raise UserError(f"text document mode {self.text_docs!r} is not blank_line or line")


def _converted(docs: Iterator[tuple[str, str]], options: PrepareOptions):
    """Traditional -> simplified for the plain sources when ``options.t2s`` asks for it."""
    converter = wiki.make_converter() if options.t2s else None
    for label, text in docs:
        yield label, (converter.convert(text) if converter is not None else text)


def _read_demo(inputs: Sequence[Path], options: PrepareOptions, wiki_stats: dict):
    yield from _converted(sources.iter_demo(), options)


def _read_text(inputs: Sequence[Path], options: PrepareOptions, wiki_stats: dict):
    for path in inputs:
        yield from _converted(sources.iter_text(path, options.text_docs), options)


def _read_jsonl(inputs: Sequence[Path], options: PrepareOptions, wiki_stats: dict):
    for path in inputs:
        yield from _converted(sources.iter_jsonl(path, options.text_field), options)


def _read_wiki(inputs: Sequence[Path], options: PrepareOptions, wiki_stats: dict):
    for path in inputs:  # the wiki reader converts in its worker pool itself
        yield from wiki.iter_wiki(path, wiki_stats.setdefault(path.name, {}),
                                  t2s=options.t2s is not False, workers=options.workers)


#: each source and its reader ``(inputs, options, wiki_stats) -> (label, text)`` documents;
#: a new source is one entry here (SOURCES follows)
READERS = {"demo": _read_demo, "text": _read_text, "jsonl": _read_jsonl, "wiki": _read_wiki}
SOURCES = tuple(READERS)


def iter_documents(source: str, inputs: Sequence[Path], options: PrepareOptions,
                   wiki_stats: dict) -> Iterator[tuple[str, str]]:
    """``(source_label, text)`` documents of all inputs of ``source``; UserError when unknown."""
    if source not in READERS:
        raise UserError(f"unknown source {source!r} (choose from {', '.join(READERS)})")
    yield from READERS[source](inputs, options, wiki_stats)


def heldout_keys(tasks: Sequence[str] | None = None) -> frozenset[str]:
    """The keys of every dev and test sentence of the downstream tasks, each task text normalised
    and split like a corpus document (``zhbert.taskdata.heldout``; docs/DOWNSTREAM.md)."""
    return frozenset(heldout_mod.text_key(sentence)
                     for texts in heldout_mod.heldout_texts(tasks).values() for text in texts
                     for sentence in split_sentences(normalize_text(text)))


def guard_enabled(source: str, options: PrepareOptions) -> bool:
    """Whether the held-out guard runs: ``options.heldout_guard``, or by default for the demo."""
    return source == "demo" if options.heldout_guard is None else options.heldout_guard


def collect_sentences(docs: Iterator[tuple[str, str]], options: PrepareOptions,
                      progress: bool, heldout: frozenset[str] = frozenset(),
                      ) -> tuple[list[list[str]], dict]:
    """Normalise, split, filter and deduplicate; return kept documents and per-source counts.

    A sentence whose key is in ``heldout`` (:func:`heldout_keys`) is dropped as "heldout"."""
    from tqdm import tqdm

    seen: set[str] = set()
    kept_docs: list[list[str]] = []
    per_source: dict[str, dict] = {}
    for n, (label, text) in enumerate(tqdm(docs, desc="read", unit="doc", disable=not progress,
                                           leave=False)):
        if options.max_documents is not None and n >= options.max_documents:
            break
        st = per_source.setdefault(label, {"documents_read": 0, "sentences_split": 0,
                                           "sentences_kept": 0, "dropped": dict.fromkeys(FILTERS, 0)})
        st["documents_read"] += 1
        kept = []
        for sentence in split_sentences(normalize_text(text)):
            st["sentences_split"] += 1
            reason = sentence_filter_reason(sentence, options.min_length, options.max_length,
                                            options.min_han_share, options.max_kana_hangul_share)
            if reason is None and heldout and heldout_mod.text_key(sentence) in heldout:
                reason = "heldout"
            if reason is None and sentence in seen:
                reason = "duplicate"
            if reason is None:
                seen.add(sentence)
                kept.append(sentence)
            else:
                st["dropped"][reason] += 1
        st["sentences_kept"] += len(kept)
        if kept:
            kept_docs.append(kept)
    return kept_docs, per_source


def choose_val_documents(doc_sizes: Sequence[int], options: PrepareOptions) -> np.ndarray:
    """Boolean mask of validation documents: a seeded random set of whole documents holding at
    least ``max(val_fraction * N, min(min_val_sentences, N // 5))`` sentences (never all)."""
    total = int(sum(doc_sizes))
    is_val = np.zeros(len(doc_sizes), dtype=bool)
    if options.val_fraction <= 0 or len(doc_sizes) < 2:
        return is_val
    target = max(math.ceil(options.val_fraction * total), min(options.min_val_sentences, total // 5))
    got = 0
    for d in np.random.default_rng(options.seed).permutation(len(doc_sizes)):
        if got >= target or got + doc_sizes[d] >= total:
            break
        is_val[d] = True
        got += doc_sizes[d]
    return is_val


def _check_inputs(source: str, inputs: Sequence[Path], out_dir: Path, overwrite: bool) -> None:
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r} (choose from {', '.join(SOURCES)})")
    if source == "demo" and inputs:
        raise UserError("--input is not used with --source demo")
    if source != "demo" and not inputs:
        raise UserError(f"--source {source} needs at least one --input file")
    for path in inputs:
        require_file(path, f"a {source} input file")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: is a file, expected an output directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise UserError(f"{out_dir}: output directory is not empty (use --overwrite)")
        if not (out_dir / "corpus_meta.json").is_file():
            raise UserError(f"{out_dir}: not a prepared corpus (no corpus_meta.json); --overwrite "
                            "replaces only a corpus directory: choose another --out-dir")
        _refuse_foreign(out_dir)


def _refuse_foreign(out_dir: Path) -> None:
    """UserError naming what a prepared corpus directory holds beyond :data:`OUTPUT_FILES`:
    ``--overwrite`` replaces the directory whole, and must not take the user's files with it."""
    foreign = sorted(p.name + ("/" if p.is_dir() else "") for p in out_dir.iterdir()
                     if p.name not in OUTPUT_FILES or not p.is_file())
    if not foreign:
        return
    names = ", ".join(foreign[:MAX_NAMED])
    more = f" and {len(foreign) - MAX_NAMED} more" if len(foreign) > MAX_NAMED else ""
    raise UserError(f"{out_dir}: holds {len(foreign)} file(s) the corpus preparation did not "
                    f"write ({names}{more}); --overwrite would delete them with the old corpus: "
                    "move them out or choose another --out-dir")


def _warn_foreign(per_source: dict) -> None:
    """Warn when a large share of the input is Japanese or Korean (kana/hangul sentences)."""
    split = sum(s["sentences_split"] for s in per_source.values())
    foreign = sum(s["dropped"]["kana_hangul"] for s in per_source.values())
    if split and foreign > FOREIGN_WARN_SHARE * split:
        warnings.warn(f"{foreign:,} of {split:,} sentences ({foreign / split:.0%}) are mostly kana "
                      "or hangul (Japanese/Korean) and were dropped; is this a Chinese corpus?",
                      UserWarning, stacklevel=2)


def _no_data_error(source: str, inputs: Sequence[Path], per_source: dict) -> UserError:
    where = ", ".join(str(p) for p in inputs) or "demo corpus"
    docs = sum(s["documents_read"] for s in per_source.values())
    if docs == 0:
        return UserError(f"{where}: empty corpus (no documents found in the {source} input)")
    dropped = {k: sum(s["dropped"][k] for s in per_source.values()) for k in FILTERS}
    detail = ", ".join(f"{k} {v}" for k, v in dropped.items() if v)
    return UserError(f"{where}: every sentence was filtered out ({detail}); "
                     "adjust --min-length/--max-length/--min-han-share")


def prepare_corpus(source: str = "demo", inputs: Sequence[str | Path] = (),
                   out_dir: str | Path = "data/demo", options: PrepareOptions | None = None,
                   progress: bool = True) -> dict:
    """Prepare a corpus directory (layout in docs/DATASET.md) atomically; return dataset_stats.

    A full disk (or quota) while writing is one UserError; nothing is left behind."""
    options = options or PrepareOptions()
    options.validate()
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir).resolve()  # "." and ".." have no name to rename
    _check_inputs(source, inputs, out_dir, options.overwrite)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    wiki_stats: dict = {}
    guard = guard_enabled(source, options)
    keys = heldout_keys() if guard else frozenset()
    timings["heldout_keys"] = time.perf_counter() - t0
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        docs, per_source = collect_sentences(
            iter_documents(source, inputs, options, wiki_stats), options, progress, keys)
        _warn_foreign(per_source)
    for w in caught:  # re-emit after recording, so callers still see them
        warnings.warn(str(w.message), UserWarning, stacklevel=2)
    timings["read_clean_filter"] = time.perf_counter() - t
    if not docs:
        raise _no_data_error(source, inputs, per_source)
    is_val = choose_val_documents([len(d) for d in docs], options)
    with no_space_is_user_error(out_dir), atomic_dir(out_dir) as tmp:
        stats = _build(tmp, docs, is_val, options, progress, timings)
        stats.update(source=source, inputs=[str(p) for p in inputs], sources=per_source,
                     wiki=wiki_stats or None, warnings=[str(w.message) for w in caught],
                     options=asdict(options))
        stats["duplicates_removed"] = sum(s["dropped"]["duplicate"] for s in per_source.values())
        stats["heldout_guard"] = {
            "enabled": guard, "heldout_sentences": len(keys),
            "dropped": sum(s["dropped"]["heldout"] for s in per_source.values())}
        candidates = stats["duplicates_removed"] + stats["num_sentences"]
        stats["duplicate_rate_before_dedup"] = stats["duplicates_removed"] / candidates
        stats["elapsed_s"] = round(time.perf_counter() - t0, 2)
        atomic_write_json(tmp / "dataset_stats.json", stats)
    return stats


def _build(tmp: Path, docs: list[list[str]], is_val: np.ndarray, options: PrepareOptions,
           progress: bool, timings: dict) -> dict:
    """Vocabulary, tokenizer files, binary splits and the core statistics, written into ``tmp``."""
    t = time.perf_counter()
    train_sents = [s for d, val in zip(docs, is_val, strict=True) if not val for s in d]
    # The vocabulary comes from the training split only, so val OOV/[UNK] rates are honest.
    vocab = vocab_mod.build_vocab(train_sents, options.min_char_freq, options.max_chars,
                                  options.max_wordpieces, options.lowercase)
    tokenizer = vocab_mod.save_tokenizer(vocab, tmp, options.lowercase)
    timings["vocab"] = time.perf_counter() - t
    dtype = binary.token_dtype(len(vocab))
    unk = vocab.index("[UNK]")
    stats: dict = {"splits": {}}
    for split, want_val in (("train", False), ("val", True)):
        t = time.perf_counter()
        doc_ids = [i for i in range(len(docs)) if bool(is_val[i]) == want_val]
        sents = [s for i in doc_ids for s in docs[i]]
        sent_docs = [i for i in doc_ids for _ in docs[i]]
        ids, ws = encode_sentences(tokenizer, sents, vocab, options.jieba_hmm, progress, split)
        keep = [k for k, a in enumerate(ids) if a.size]  # a sentence of only dropped chars
        split_stats = binary.write_split(tmp, split, [ids[k] for k in keep],
                                         [sent_docs[k] for k in keep], [ws[k] for k in keep], dtype)
        n_tok = max(split_stats["tokens"], 1)
        split_stats["unk_rate"] = sum(int((a == unk).sum()) for a in ids) / n_tok
        split_stats["empty_sentences_dropped"] = len(ids) - len(keep)
        stats["splits"][split] = split_stats
        timings[f"tokenize_{split}"] = time.perf_counter() - t
    all_sents = [s for d in docs for s in d]
    chars = set().union(*map(set, all_sents)) - {" "}
    n_chars = sum(map(len, all_sents))
    tr, va = stats["splits"]["train"], stats["splits"]["val"]
    stats.update(
        num_sentences=len(all_sents), num_documents=len(docs), num_characters=n_chars,
        num_unique_chars=len(chars), avg_sentence_length=round(n_chars / len(all_sents), 3),
        duplicate_rate=1.0 - len(set(all_sents)) / len(all_sents), duplicates_in_output=
        len(all_sents) - len(set(all_sents)), vocab_size=len(vocab),
        num_wordpiece_tokens=sum(1 for v in vocab if len(v.lstrip("#")) > 1 or v.startswith("##")),
        train_sentences=tr["sentences"], val_sentences=va["sentences"],
        train_documents=tr["documents"], val_documents=va["documents"],
        train_tokens=tr["tokens"], val_tokens=va["tokens"],
        unk_rate={"train": tr["unk_rate"], "val": va["unk_rate"]},
        jieba_hmm=options.jieba_hmm, timings_s={k: round(v, 2) for k, v in timings.items()},
    )
    stats["num_wordpiece_tokens"] -= len(vocab_mod.SPECIAL_TOKENS)
    meta = {
        "format_version": binary.FORMAT_VERSION, "dtype": str(np.dtype(dtype)),
        "vocab_size": len(vocab),
        "special_ids": {k: vocab.index(t) for k, t in zip(
            ("pad", "unk", "cls", "sep", "mask"), vocab_mod.SPECIAL_TOKENS, strict=True)},
        "fingerprint": binary.fingerprint(tmp), "splits": stats.pop("splits"),
    }
    atomic_write_json(tmp / "corpus_meta.json", meta)
    return stats


def heldout_summary(guard: dict) -> str:
    """One line on the held-out guard of a preparation (``stats["heldout_guard"]``).

    >>> heldout_summary({"enabled": True, "heldout_sentences": 9000, "dropped": 12})
    '12 dropped (guard on: 9,000 held-out sentences)'
    """
    if not guard["enabled"]:
        return "kept (held-out guard off)"
    return f"{guard['dropped']:,} dropped (guard on: {guard['heldout_sentences']:,} held-out sentences)"


def format_summary(stats: dict) -> str:
    """A plain-text summary table of a preparation's statistics."""
    rows = [
        ("sentences (train / val)",
         f"{stats['num_sentences']:,} ({stats['train_sentences']:,} / {stats['val_sentences']:,})"),
        ("documents (train / val)",
         f"{stats['num_documents']:,} ({stats['train_documents']:,} / {stats['val_documents']:,})"),
        ("tokens (train / val)", f"{stats['train_tokens']:,} / {stats['val_tokens']:,}"),
        ("avg sentence length", f"{stats['avg_sentence_length']:.1f} chars"),
        ("unique chars / vocab size", f"{stats['num_unique_chars']:,} / {stats['vocab_size']:,}"),
        ("[UNK] rate train / val",
         f"{stats['unk_rate']['train']:.4%} / {stats['unk_rate']['val']:.4%}"),
        ("duplicates removed",
         f"{stats['duplicates_removed']:,} ({stats['duplicate_rate_before_dedup']:.2%})"),
        ("task dev/test sentences",
         heldout_summary(stats.get("heldout_guard") or {"enabled": False})),
        ("elapsed", f"{stats['elapsed_s']:.1f} s"),
    ]
    lines = [f"{k:<28}{v}" for k, v in rows]
    lines.append("")
    lines.append(f"{'source':<22}{'docs':>9}{'kept':>9}" + "".join(f"{f:>15}" for f in FILTERS))
    for label, st in stats["sources"].items():
        lines.append(f"{label:<22}{st['documents_read']:>9,}{st['sentences_kept']:>9,}"
                     + "".join(f"{st['dropped'][f]:>15,}" for f in FILTERS))
    return "\n".join(lines)
