"""Text normalisation, sentence splitting and sentence filters for Chinese text.

Decisions (see docs/DATASET.md):
- Full-width ASCII letters, digits and a few symbols (％＋－＝＠＃＆＊＿／＜＞＼＾｀｜～＄．) become
  half-width; Chinese punctuation (，。！？；：（）“”《》 …) is kept as it is, because NFKC would turn
  ，into , and lose the distinction the model should learn.
- Whitespace runs become one space; a space between two non-ASCII characters is removed
  (Chinese does not separate words by spaces; review texts use them as pauses).
- A "Han" character is one of the CJK ideograph blocks that BERT's tokenizer isolates.
- Kana and hangul mark Japanese and Korean text: a sentence where they exceed
  ``max_kana_hangul_share`` is dropped ("kana_hangul"), since its kanji/hanja would otherwise be
  learnt as Chinese. Voicing marks (が, バ) are never stripped (the tokenizer keeps accents).
"""

from __future__ import annotations

import re
import unicodedata

# Full-width letters/digits and the symbols that are really ASCII in Chinese text.
_FW_KEEP_AS_HALF = "％＋－＝＠＃＆＊＿／＜＞＼＾｀｜～＄．"
_FULL_TO_HALF = {cp: cp - 0xFEE0 for cp in range(0xFF10, 0xFF1A)}  # digits
_FULL_TO_HALF.update({cp: cp - 0xFEE0 for cp in range(0xFF21, 0xFF3B)})  # A-Z
_FULL_TO_HALF.update({cp: cp - 0xFEE0 for cp in range(0xFF41, 0xFF5B)})  # a-z
_FULL_TO_HALF.update({ord(ch): ord(ch) - 0xFEE0 for ch in _FW_KEEP_AS_HALF})
_FULL_TO_HALF[0x3000] = 0x20  # ideographic space
# Zero-width and BOM characters carry no text.
for _cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD):
    _FULL_TO_HALF[_cp] = None

_HAN_RANGES = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002ceaf\U0002f800-\U0002fa1f"
)
HAN_RE = re.compile(f"[{_HAN_RANGES}]")
# Hiragana, katakana (+ phonetic extensions, half-width forms), hangul syllables and jamo.
KANA_HANGUL_RE = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
                            "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WS_RE = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200a\u202f\u205f]+")
# A space between two non-ASCII characters (Chinese text, punctuation) is dropped.
_CJK_SPACE_RE = re.compile(r"(?<=[^\x00-\x7f]) (?=[^\x00-\x7f])")

# Sentence end: Chinese/ASCII terminators or an ellipsis, then any closing quotes/brackets.
_TERMINATORS = "。！？；!?;｡"
_CLOSERS = "」』”’）)】》〉〕］\"'"
_SENTENCE_RE = re.compile(
    rf"[^\n{_TERMINATORS}…⋯]*?(?:[{_TERMINATORS}]+|[…⋯]+|\.{{3,}})[{_CLOSERS}]*"
    rf"|[^\n]+"
)


def normalize_text(text: str) -> str:
    """Normalise one document: NFC, full-width ASCII to half-width, whitespace cleanup.

    Newlines are kept (they separate paragraphs); each line is stripped.

    >>> normalize_text("ＡＢＣ１２３，好\u3000 的 文字")
    'ABC123，好的文字'
    """
    text = unicodedata.normalize("NFC", text).translate(_FULL_TO_HALF)
    text = _CONTROL_RE.sub("", text)
    lines = []
    for line in text.split("\n"):
        line = _WS_RE.sub(" ", line).strip()
        if line:
            lines.append(_CJK_SPACE_RE.sub("", line))
    return "\n".join(lines)


def split_sentences(text: str) -> list[str]:
    """Split normalised text into sentences on 。！？；… (and ASCII !?; or ...).

    Closing quotes and brackets stay with the sentence they close; a newline always ends a
    sentence; trailing text without a terminator is its own sentence.

    >>> split_sentences("他说：“好。”然后走了！真的……")
    ['他说：“好。”', '然后走了！', '真的……']
    """
    out = []
    for match in _SENTENCE_RE.finditer(text):
        sentence = match.group().strip()
        if sentence:
            out.append(sentence)
    return out


def han_share(sentence: str) -> float:
    """Share of Han characters among the non-space characters of ``sentence`` (0 when empty)."""
    n = len(sentence) - sentence.count(" ")
    return len(HAN_RE.findall(sentence)) / n if n else 0.0


def kana_hangul_share(sentence: str) -> float:
    """Share of kana and hangul among the non-space characters of ``sentence`` (0 when empty)."""
    n = len(sentence) - sentence.count(" ")
    return len(KANA_HANGUL_RE.findall(sentence)) / n if n else 0.0


def sentence_filter_reason(
    sentence: str, min_length: int, max_length: int, min_han_share: float,
    max_kana_hangul_share: float = 0.1,
) -> str | None:
    """Why ``sentence`` is dropped ("too_short", "too_long", "kana_hangul", "low_han_share"), or
    None to keep it.

    Length is counted in characters (code points) of the normalised sentence.
    """
    n = len(sentence)
    if n < min_length:
        return "too_short"
    if n > max_length:
        return "too_long"
    if kana_hangul_share(sentence) > max_kana_hangul_share:
        return "kana_hangul"
    if han_share(sentence) < min_han_share:
        return "low_han_share"
    return None
