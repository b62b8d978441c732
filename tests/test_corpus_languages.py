"""What a Chinese corpus keeps of Japanese and Korean input (issue 14, item 9)."""

from __future__ import annotations

import pytest

from zhbert.corpus import PrepareOptions, prepare_corpus
from zhbert.corpus.text import kana_hangul_share, sentence_filter_reason
from zhbert.corpus.vocab import make_normalizer

JAPANESE = ["東京の天気は晴れです。", "バスが駅に着きました。", "私は学校へ行きます。",
            "日本語の文章を書いています。"]
KOREAN = ["서울은 한국의 수도입니다。"]
CHINESE = ["今天北京的天气很好。", "我们明天一起去学校吧。", "这家店的东西非常便宜。"]


def test_kana_and_hangul_sentences_are_dropped_chinese_kept():
    for s in JAPANESE + KOREAN:
        assert sentence_filter_reason(s, 2, 100, 0.0) == "kana_hangul", s
    for s in CHINESE:
        assert sentence_filter_reason(s, 2, 100, 0.5) is None, s
    # one kana in a long Chinese sentence (a brand name) is tolerated
    assert sentence_filter_reason("这家叫做好の店的餐厅在北京很有名气呢。", 2, 100, 0.5) is None
    assert kana_hangul_share("バス") == 1.0 and kana_hangul_share("") == 0.0


def test_voicing_marks_are_never_stripped():
    norm = make_normalizer(lowercase=True)
    assert norm.normalize_str("がバスぱ") == "がバスぱ"
    assert norm.normalize_str("ABC") == "abc"


def test_a_japanese_input_is_counted_and_warned_about(tmp_path):
    text = tmp_path / "ja.txt"
    docs = ["".join(JAPANESE)] * 30 + ["".join(CHINESE) + f"第{i}号文件。" for i in range(12)]
    text.write_text("\n\n".join(docs), encoding="utf-8")
    opts = PrepareOptions(min_length=2, min_val_sentences=2)
    with pytest.warns(UserWarning, match="kana or hangul .*Chinese corpus"):
        stats = prepare_corpus("text", [text], out_dir=tmp_path / "out", options=opts,
                               progress=False)
    (source,) = stats["sources"].values()
    assert source["dropped"]["kana_hangul"] == 30 * len(JAPANESE)
    assert source["sentences_kept"] == len(CHINESE) + 12  # the numbered sentences are distinct
    vocab = (tmp_path / "out" / "vocab.txt").read_text(encoding="utf-8").split()
    assert not any(kana_hangul_share(t) for t in vocab)
