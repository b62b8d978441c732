"""Binary format, tokenizer files, dedup and an end-to-end preparation of a demo slice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zhbert.corpus import (
    PrepareOptions,
    format_summary,
    load_corpus_info,
    load_split,
    prepare_corpus,
)
from zhbert.corpus.binary import write_split
from zhbert.corpus.prepare import choose_val_documents, collect_sentences
from zhbert.corpus.vocab import SPECIAL_TOKENS, build_vocab, save_tokenizer
from zhbert.errors import UserError


def test_binary_round_trip(tmp_path):
    sents = [np.array([5, 6, 7]), np.array([8]), np.array([9, 10])]
    ws = [np.array([1, 0, 1]), np.array([1]), np.array([1, 1])]
    stats = write_split(tmp_path, "train", sents, [0, 0, 3], ws, np.uint16)
    assert stats == {"sentences": 3, "tokens": 6, "documents": 2}
    write_split(tmp_path, "val", [], [], [], np.uint16)
    meta = {"format_version": 1, "dtype": "uint16", "vocab_size": 11, "fingerprint": "x",
            "special_ids": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}}
    (tmp_path / "corpus_meta.json").write_text(json.dumps(meta))
    info = load_corpus_info(tmp_path)
    assert info.special_ids == (0, 1, 2, 3, 4) and info.vocab_size == 11
    split = load_split(tmp_path, "train")
    assert len(split) == 3 and split.tokens.dtype == np.uint16
    assert split.sentence(2).tolist() == [9, 10]
    assert split.sentence_word_starts(0).tolist() == [1, 0, 1]
    assert split.docs.tolist() == [0, 0, 3]
    assert len(load_split(tmp_path, "val")) == 0
    (tmp_path / "train.word_starts.bin").write_bytes(b"\x01")
    with pytest.raises(UserError, match="corrupt train"):
        load_split(tmp_path, "train")


def test_tokenizer_loads_in_transformers(tmp_path):
    from transformers import BertTokenizerFast

    sentences = ["今天天气很好。", "我们使用Windows XP和Windows系统，很好。"] * 3
    vocab = build_vocab(sentences, min_char_freq=1)
    assert tuple(vocab[:5]) == SPECIAL_TOKENS
    save_tokenizer(vocab, tmp_path)
    tok = BertTokenizerFast.from_pretrained(str(tmp_path))
    assert tok.tokenize("今天天气很好。") == list("今天天气很好。")
    assert tok.mask_token_id == 4 and tok.pad_token_id == 0 and len(tok) == len(vocab)
    ids = tok("我们使用windows")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == "我们使用windows"
    assert "windows" in vocab and "##w" in vocab


def test_dedup_and_val_split_by_document():
    docs = iter([("a", "这是第一个足够长的句子。这是第一个足够长的句子。"),
                 ("b", "这是第一个足够长的句子！短。"), ("b", "另外一篇文章的句子。")])
    opts = PrepareOptions(min_length=5, max_length=20)
    kept, per_source = collect_sentences(docs, opts, progress=False)
    assert kept == [["这是第一个足够长的句子。"], ["这是第一个足够长的句子！"], ["另外一篇文章的句子。"]]
    assert per_source["a"]["dropped"]["duplicate"] == 1
    assert per_source["b"]["dropped"]["too_short"] == 1
    is_val = choose_val_documents([5] * 40, PrepareOptions(val_fraction=0.1, min_val_sentences=0))
    assert is_val.sum() == 4
    again = choose_val_documents([5] * 40, PrepareOptions(val_fraction=0.1, min_val_sentences=0))
    assert (is_val == again).all()


def test_demo_slice_end_to_end(tmp_path):
    out = tmp_path / "demo"
    opts = PrepareOptions(max_documents=400, min_val_sentences=100)
    stats = prepare_corpus("demo", out_dir=out, options=opts, progress=False)
    assert stats["num_sentences"] > 300 and stats["duplicate_rate"] == 0.0
    assert stats["train_sentences"] + stats["val_sentences"] == stats["num_sentences"]
    assert stats["val_sentences"] >= min(100, stats["num_sentences"] // 5)
    assert stats["sources"]["peoples_daily_1998"]["documents_read"] == 400
    info = load_corpus_info(out)
    assert info.vocab_size == stats["vocab_size"] and len(info.fingerprint) == 64
    train, val = load_split(out, "train"), load_split(out, "val")
    assert len(train) == stats["train_sentences"] and int(train.offsets[-1]) == stats["train_tokens"]
    assert not set(train.docs.tolist()) & set(val.docs.tolist())
    assert (np.diff(train.docs) >= 0).all()  # a document's sentences are consecutive
    assert train.tokens.max() < info.vocab_size
    assert all(train.sentence_word_starts(i)[0] == 1 for i in range(len(train)))
    share = float(train.word_starts.mean())
    assert 0.4 < share < 0.95  # jieba words are mostly 1-3 characters
    assert "sentences (train / val)" in format_summary(stats)
    with pytest.raises(UserError, match="not empty"):
        prepare_corpus("demo", out_dir=out, options=opts, progress=False)


def test_every_source_has_a_reader_and_an_unknown_one_fails_loudly():
    from zhbert.corpus.prepare import READERS, SOURCES, iter_documents

    assert tuple(READERS) == SOURCES and set(SOURCES) == {"demo", "text", "jsonl", "wiki"}
    with pytest.raises(UserError, match="unknown source 'books'"):
        list(iter_documents("books", [], PrepareOptions(), {}))
