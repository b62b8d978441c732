"""Normalisation, sentence splitting, filters, tag stripping and wiki markup removal."""

from __future__ import annotations

from zhbert.corpus.sources import strip_pos_tags
from zhbert.corpus.text import han_share, normalize_text, sentence_filter_reason, split_sentences
from zhbert.corpus.wiki import clean_wikitext, make_converter


def test_normalize_fullwidth_ascii_keeps_chinese_punctuation():
    assert normalize_text("ＡＢｃ１２３％，。！（好）") == "ABc123%，。！（好）"
    assert normalize_text("  今天  天气\u3000很好 \n\n ok  go \t") == "今天天气很好\nok go"
    assert normalize_text("a\u200bb\x07c") == "abc"


def test_split_keeps_closing_quotes_and_brackets():
    text = "他说：“我们走吧。”她笑了！（真的吗？）是的……好；再见"
    assert split_sentences(text) == ["他说：“我们走吧。”", "她笑了！", "（真的吗？）", "是的……",
                                     "好；", "再见"]
    assert split_sentences("《书名》很好。」\n第二行没有句号") == ["《书名》很好。」", "第二行没有句号"]
    assert split_sentences("价格是3.5元。真的吗?!是") == ["价格是3.5元。", "真的吗?!", "是"]
    assert split_sentences("") == []


def test_filters_and_han_share():
    assert han_share("中文ab") == 0.5
    assert han_share("") == 0.0
    assert sentence_filter_reason("短句。", 5, 10, 0.5) == "too_short"
    assert sentence_filter_reason("很" * 11, 5, 10, 0.5) == "too_long"
    assert sentence_filter_reason("abcdef中", 5, 10, 0.5) == "low_han_share"
    assert sentence_filter_reason("这是一个好句子。", 5, 10, 0.5) is None


def test_strip_pos_tags():
    line = "19980101-01-001-002/m  中共中央/nt  总书记/n  、/w  ＩＢＭ/nx  ＰＣ/nx  １２月/t"
    assert strip_pos_tags(line) == "中共中央总书记、ＩＢＭ ＰＣ １２月"
    assert strip_pos_tags("迈向/v  [中国/ns  政府/n]nt") == "迈向中国政府"


def test_traditional_to_simplified():
    assert make_converter().convert("漢語電腦軟體與資訊") == "汉语电脑软体与资讯"


def test_wiki_markup_removed():
    text = (
        "{{Infobox\n|name=X\n}}'''北京'''<ref name=a>{{cite|x}}</ref>是[[中国|中华人民共和国]]的首都。"
        "-{zh-hans:计算机;zh-hant:電腦;}-很好。\n[[File:a.jpg|thumb|图]]\n== 历史 ==\n"
        "{| class=wikitable\n|-\n| 表格 || 内容\n|}\n* 列表项\n北京历史悠久<!-- c -->。\n"
        "[[Category:首都]][[分类:城市]]"
    )
    assert clean_wikitext(text) == "北京是中华人民共和国的首都。计算机很好。\n北京历史悠久。"
