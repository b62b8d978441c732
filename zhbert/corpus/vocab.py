"""Vocabulary and tokenizer building: one token per Han character, WordPiece for Latin words.

The tokenizer is a standard BERT WordPiece tokenizer built with the ``tokenizers`` library:
``BertNormalizer`` (lowercase, ``handle_chinese_chars`` isolates every CJK ideograph),
``BertPreTokenizer`` (splits on whitespace and punctuation). The vocabulary is
``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0..4), then characters by descending frequency, then
``##x`` continuations of the non-Han, non-punctuation characters (so that no Latin word becomes
[UNK] for lack of a piece), then up to ``max_wordpieces`` multi-character Latin/digit words, most frequent first.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from zhbert.corpus.text import HAN_RE

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def is_punctuation(ch: str) -> bool:
    """BERT's punctuation test: ASCII symbols or any Unicode ``P*`` category."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def make_normalizer(lowercase: bool = True):
    """The BERT normaliser used both for counting characters and inside the tokenizer."""
    from tokenizers import normalizers

    return normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=lowercase
    )


def count_chars(sentences: Sequence[str], lowercase: bool = True) -> Counter:
    """Character counts of ``sentences`` as the tokenizer's normaliser sees them (no whitespace).

    Raw characters are counted first and each distinct one is then normalised on its own, which
    is exact because BertNormalizer works character by character, and much faster.
    """
    raw: Counter = Counter()
    for sentence in sentences:
        raw.update(sentence)
    norm = make_normalizer(lowercase)
    counts: Counter = Counter()
    for ch, n in raw.items():
        for out in norm.normalize_str(ch).split():
            for c in out:
                counts[c] += n
    return counts


def select_chars(counts: Counter, min_freq: int = 1, max_chars: int | None = None) -> list[str]:
    """Characters seen at least ``min_freq`` times, most frequent first, at most ``max_chars``."""
    ranked = sorted((c for c, n in counts.items() if n >= min_freq), key=lambda c: (-counts[c], c))
    return ranked[:max_chars] if max_chars is not None else ranked


def _word_pieces(
    sentences: Sequence[str], word_chars: set[str], max_wordpieces: int, lowercase: bool
) -> list[str]:
    """The ``max_wordpieces`` most frequent multi-character Latin/digit words (seen >= 2 times).

    Deterministic on purpose: tokenizers' WordPieceTrainer breaks frequency ties differently from
    run to run, which would change the vocabulary (and the corpus fingerprint) between runs. With
    single-character ``##x`` continuations always present, WordPiece's greedy longest match splits
    any other word into known pieces.
    """
    if max_wordpieces <= 0 or not word_chars:
        return []
    norm = make_normalizer(lowercase)
    raw_chars = {ch for ch in set().union(*map(set, sentences)) if ch.strip()}
    # Raw characters whose normalised form is made only of word characters (e.g. "Ａ" -> "a").
    raw_word = sorted(ch for ch in raw_chars
                      if (n := norm.normalize_str(ch).strip()) and all(c in word_chars for c in n))
    if not raw_word:
        return []
    word_re = re.compile("[" + "".join(re.escape(c) for c in raw_word) + "]{2,}")
    raw_counts: Counter = Counter()
    for start in range(0, len(sentences), 5000):
        raw_counts.update(word_re.findall("\n".join(sentences[start : start + 5000])))
    counts: Counter = Counter()
    for word, n in raw_counts.items():
        counts[norm.normalize_str(word)] += n
    ranked = sorted((w for w, n in counts.items() if n >= 2 and len(w) > 1),
                    key=lambda w: (-counts[w], w))
    return ranked[:max_wordpieces]


def build_vocab(
    sentences: Sequence[str],
    min_char_freq: int = 1,
    max_chars: int | None = None,
    max_wordpieces: int = 1000,
    lowercase: bool = True,
    counts: Counter | None = None,
) -> list[str]:
    """The full vocabulary (specials first) for ``sentences``; see the module docstring."""
    counts = counts if counts is not None else count_chars(sentences, lowercase)
    chars = [c for c in select_chars(counts, min_char_freq, max_chars) if c not in SPECIAL_TOKENS]
    continuations = [
        "##" + c for c in chars if not HAN_RE.match(c) and not is_punctuation(c)
    ]
    word_chars = {c for c in chars if not HAN_RE.match(c) and not is_punctuation(c)}
    pieces = _word_pieces(sentences, word_chars, max_wordpieces, lowercase)
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for token in [*chars, *continuations, *pieces]:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab


def make_tokenizer(vocab: Sequence[str], lowercase: bool = True):
    """A ``tokenizers.Tokenizer`` (BERT WordPiece pipeline) over ``vocab``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    ids = {tok: i for i, tok in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = make_normalizer(lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = ids["[CLS]"], ids["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


#: the files :func:`save_tokenizer` writes
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")


def save_tokenizer(vocab: Sequence[str], out_dir: Path, lowercase: bool = True):
    """Write vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json into
    ``out_dir`` (loadable by ``transformers.BertTokenizerFast.from_pretrained``); return the
    ``tokenizers.Tokenizer``."""
    out_dir = Path(out_dir)
    tok = make_tokenizer(vocab, lowercase)
    (out_dir / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    # written by Python, not tokenizers' own save: a full disk is then an OSError like the rest
    (out_dir / "tokenizer.json").write_text(tok.to_str(pretty=True), encoding="utf-8")
    names = dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"),
                     SPECIAL_TOKENS, strict=True))
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": lowercase,
        "strip_accents": False,  # never strip voicing marks (が must not become か)
        "tokenize_chinese_chars": True,
        "model_max_length": 512,
        "clean_up_tokenization_spaces": True,
        **names,
    }
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (out_dir / "special_tokens_map.json").write_text(
        json.dumps(names, indent=2) + "\n", encoding="utf-8"
    )
    return tok
