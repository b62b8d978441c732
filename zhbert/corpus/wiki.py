"""Streaming MediaWiki XML dump reader and wikitext-to-plain-text cleaner.

The dump (``.xml``, ``.xml.bz2``, ``.xml.gz``, ``.xml.xz``) is read page by page with
``iterparse`` and each finished element is cleared, so memory stays constant. Only main-namespace
(ns 0) pages that are not redirects are yielded. A dump that is cut off mid-way yields the complete
pages it holds and a ``UserWarning``; a file that is not an XML dump at all is a ``UserError``.

Markup removal (the slow part) can run in a process pool (``iter_wiki(..., workers=2)``): pages are
sent in small batches, at most ``2 * workers`` batches are in flight (so the dump is read only as fast
as it is cleaned and memory stays bounded) and results come back in dump order, identical to the
single-process path.
"""

from __future__ import annotations

import bz2
import gzip
import html
import lzma
import re
import signal
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO

from zhbert.errors import UserError

# Tags whose content is never prose.
_DROP_TAGS = {
    "ref", "references", "table", "gallery", "math", "chem", "code", "pre", "score", "timeline",
    "imagemap", "syntaxhighlight", "source", "graph", "mapframe", "templatedata", "poem", "hiero",
}
# Link namespaces whose links are media or metadata, not text (English and Chinese names).
_DROP_LINK_NS = {
    "file", "image", "media", "category", "文件", "檔案", "档案", "图像", "圖像", "分类", "分類",
    "wikipedia", "wp", "template", "模板", "help", "帮助", "portal", "主题",
}
_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_REF_RE = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I)
_NON_PROSE_LINE_RE = re.compile(r"^(?:[*#:;|!]|\{\|).*$", re.M)
# zhwiki language-conversion markup: -{text}- or -{zh-hans:简;zh-hant:繁;}-
_LANGCONV_RE = re.compile(r"-\{(.*?)\}-", re.S)
_VARIANT_RE = re.compile(r"(zh(?:-[a-z]+)?)\s*:\s*([^;]*)")
_LIST_MARKUP = {"*", "#", ":", ";"}
_LINK_RE = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTLINK_RE = re.compile(r"\[(?:https?:)?//[^\s\]]+\s*([^\]]*)\]")
_BARE_URL_RE = re.compile(r"https?://\S+")
_HTML_TAG_RE = re.compile(r"</?[a-zA-Z][^>]*>|__[A-Z]+__")
_PREFERRED_VARIANTS = ("zh-hans", "zh-cn", "zh-sg", "zh", "zh-hant", "zh-tw", "zh-hk")
# Pre-stripping before the (pure Python, slow) mwparserfromhell tree builder. Parser-blacklisted tags
# whose content is dropped anyway go first, whole, so that a brace inside (TeX) cannot pair with one
# outside; self-closing forms (<gallery />) are not blocks.
_DROP_BLOCK_RE = re.compile(
    r"<(math|chem|pre|score|timeline|imagemap|syntaxhighlight|source|graph|templatedata|hiero"
    r"|gallery)\b[^>]*(?<!/)>.*?</\1\s*>", re.S | re.I)
# Content the parser leaves unparsed (nowiki etc.) or template parameters: the page is left entirely
# to the parser, as before.
_UNPARSED_RE = re.compile(
    r"\{\{\{|<(?:categorytree|ce|chem|gallery|graph|hiero|imagemap|inputbox|math|nowiki|pre|score"
    r"|section|source|syntaxhighlight|templatedata|timeline)\b[^>]*(?<!/)>", re.I)
# Innermost template (no brace inside); repeated until none is left, which also empties nested ones.
# What it cannot match (a lone brace inside, an unclosed {{) is left to the parser.
_TEMPLATE_RE = re.compile(r"\{\{[^{}]*\}\}")
# Innermost table: {| and |} at a line start after at most one space (the parser's rule), with no
# other table start in between.
_TABLE_RE = re.compile(r"^[^\S\n]?\{\|(?:(?!^[^\S\n]?\{\|).)*?^[^\S\n]?\|\}", re.M | re.S)
# Pages per batch sent to a pool worker, and a cap on a batch's characters (huge pages).
_BATCH_PAGES = 64
_BATCH_CHARS = 2_000_000
# Set only inside pool worker processes (by _init_worker): the worker's own OpenCC converter.
_worker_converter = None


def open_dump(path: Path) -> IO[bytes]:
    """Open a dump for binary reading, decompressing by file suffix."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    opener = {".bz2": bz2.open, ".gz": gzip.open, ".xz": lzma.open}.get(suffix, open)
    try:
        return opener(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _local(tag: str) -> str:
    """Tag name without its ``{namespace}`` prefix (dump schema versions differ)."""
    return tag.rsplit("}", 1)[-1]


def _page_fields(page: ET.Element) -> tuple[str, str, bool, str]:
    """``(title, ns, is_redirect, text)`` of one ``<page>`` element."""
    title, ns, redirect, text = "", "0", False, ""
    for child in page:
        name = _local(child.tag)
        if name == "title":
            title = child.text or ""
        elif name == "ns":
            ns = (child.text or "0").strip()
        elif name == "redirect":
            redirect = True
        elif name == "revision":
            for sub in child:
                if _local(sub.tag) == "text":
                    text = sub.text or ""
    return title, ns, redirect, text


def iter_wiki_pages(path: Path, stats: dict | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(title, wikitext)`` of main-namespace, non-redirect pages of a dump.

    ``stats`` (optional) is updated with counts: pages_seen, skipped_namespace, skipped_redirect,
    truncated (bool).
    """
    stats = stats if stats is not None else {}
    for key in ("pages_seen", "skipped_namespace", "skipped_redirect"):
        stats.setdefault(key, 0)
    stats.setdefault("truncated", False)
    root = None
    with open_dump(path) as fh:
        try:
            for event, elem in ET.iterparse(fh, events=("start", "end")):
                if root is None:
                    root = elem
                    if _local(elem.tag) != "mediawiki":
                        raise UserError(f"{path}: not a MediaWiki dump (root <{_local(elem.tag)}>)")
                    continue
                if event != "end" or _local(elem.tag) != "page":
                    continue
                title, ns, redirect, text = _page_fields(elem)
                root.clear()  # drop finished pages so memory stays constant
                stats["pages_seen"] += 1
                if ns != "0":
                    stats["skipped_namespace"] += 1
                elif redirect or text.lstrip()[:9].lower() in ("#redirect", "#重定向"):
                    stats["skipped_redirect"] += 1
                else:
                    yield title, text
        except (ET.ParseError, EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
            if root is None:
                raise UserError(f"{path}: not a readable XML dump ({exc})") from None
            stats["truncated"] = True
            warnings.warn(
                f"{path}: dump is truncated or damaged ({exc}); "
                f"kept the {stats['pages_seen']} complete pages before it",
                UserWarning,
                stacklevel=2,
            )


def _langconv(match: re.Match) -> str:
    """Resolve one ``-{...}-`` conversion block to its simplified (or first) variant."""
    body = match.group(1)
    variants = dict(_VARIANT_RE.findall(body)) if ":" in body else {}
    if not variants:
        return body.split("|")[-1]
    for key in _PREFERRED_VARIANTS:
        if key in variants:
            return variants[key].strip()
    return next(iter(variants.values())).strip()


def _link_text(match) -> str:
    """Label of a wiki link (``[[target|label]]`` -> label); media/category links vanish."""
    body = match.group(1) if isinstance(match, re.Match) else str(match)
    if ":" in body and body.split(":", 1)[0].strip().lower() in _DROP_LINK_NS:
        return ""
    return body.rsplit("|", 1)[-1]


def _remove_all(pattern: re.Pattern, text: str) -> str:
    """Remove matches of ``pattern`` until none is left (innermost-first nesting)."""
    count = 1
    while count:
        text, count = pattern.subn("", text)
    return text


def _prestrip(text: str) -> str:
    """Remove templates and tables by regex: the parser would drop them too, but building their
    node trees is most of its cost. Pages with unparsed content (nowiki, template parameters) are
    returned unchanged, so the parser decides as before."""
    text = _DROP_BLOCK_RE.sub("", text)
    if _UNPARSED_RE.search(text):
        return text
    if "{{" in text:
        text = _remove_all(_TEMPLATE_RE, text)
    if "{|" in text:
        text = _remove_all(_TABLE_RE, text)
    return text


def clean_wikitext(text: str) -> str:
    """Turn wikitext into plain prose: drop templates, refs, tables, files, categories, headings
    and list/table lines; keep link labels and bold/italic text."""
    import mwparserfromhell  # imported lazily: only the wiki source needs it

    # Inline markup goes first, by regex: far fewer nodes for the (pure Python) parse tree builder.
    text = _COMMENT_RE.sub("", text)
    text = _REF_RE.sub("", text)
    text = _LANGCONV_RE.sub(_langconv, text).replace("\'\'\'", "").replace("\'\'", "")
    text = _LINK_RE.sub(_link_text, text)
    text = _EXTLINK_RE.sub(lambda m: m.group(1) or "", text)
    text = _prestrip(_BARE_URL_RE.sub("", text))
    kept = []
    for node in mwparserfromhell.parse(text).nodes:
        if isinstance(node, (mwparserfromhell.nodes.Template, mwparserfromhell.nodes.Heading)):
            continue
        if isinstance(node, mwparserfromhell.nodes.Tag) and (
            str(node.tag).lower() in _DROP_TAGS or node.wiki_markup == "{|"
        ):
            continue
        if isinstance(node, mwparserfromhell.nodes.Tag) and node.wiki_markup in _LIST_MARKUP:
            kept.append(node.wiki_markup)  # keeps the marker, so the list line is dropped below
            continue
        if isinstance(node, mwparserfromhell.nodes.Wikilink):  # a link with nested markup
            kept.append(_link_text(node.text or node.title))
            continue
        kept.append(node.__strip__(normalize=True, collapse=True) if not isinstance(
            node, mwparserfromhell.nodes.Text) else str(node))
    # List and table lines are dropped only now, once multi-line templates are gone.
    text = _NON_PROSE_LINE_RE.sub("", "".join(k for k in kept if k))
    plain = html.unescape(_HTML_TAG_RE.sub("", text))
    return "\n".join(line.strip() for line in plain.splitlines() if line.strip())


def make_converter():
    """OpenCC traditional-to-simplified converter (opencc 1.x: ``OpenCC('t2s')``)."""
    try:
        import opencc
    except ImportError:
        raise UserError("traditional-to-simplified conversion needs the opencc package") from None
    return opencc.OpenCC("t2s")


def clean_page(wikitext: str, converter=None) -> str:
    """Plain text of one page: markup removal, then traditional-to-simplified when ``converter``."""
    plain = clean_wikitext(wikitext)
    if converter is not None and plain:
        plain = converter.convert(plain)
    return plain


def _init_worker(t2s: bool) -> None:
    """Pool worker setup: its own converter; Ctrl-C is left to the parent, which stops the pool."""
    global _worker_converter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_converter = make_converter() if t2s else None


def _clean_batch(texts: list[str]) -> list[str]:
    """``clean_page`` of each page of a batch (runs in a pool worker)."""
    return [clean_page(text, _worker_converter) for text in texts]


def _batches(texts: Iterable[str]) -> Iterator[list[str]]:
    """Group page texts into batches of at most _BATCH_PAGES pages / about _BATCH_CHARS chars."""
    batch: list[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if len(batch) >= _BATCH_PAGES or size >= _BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def imap_ordered(func: Callable, items: Iterable, workers: int, initializer=None,
                 initargs: tuple = ()) -> Iterator:
    """``func(item)`` for each item, computed in a pool of ``workers`` processes, in input order.

    At most ``2 * workers`` items are in flight, so ``items`` is consumed only as fast as results
    are taken (bounded memory on an endless stream). A worker exception is re-raised here; a dead
    worker raises ``BrokenProcessPool``. On any early exit (error, Ctrl-C, the consumer stopping)
    queued items are cancelled and the workers exit after their current item, so nothing hangs.
    """
    executor = ProcessPoolExecutor(workers, initializer=initializer, initargs=initargs)
    pending: deque = deque()
    finished = False
    try:
        for item in items:
            pending.append(executor.submit(func, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        finished = True
    finally:
        # Queued items are cancelled; the at most workers + 1 running ones finish (one batch each,
        # well under a second) and the workers exit. Killing them instead could leave the executor's
        # queue feeder thread blocked on a full pipe, and the interpreter waiting for it at exit.
        executor.shutdown(wait=finished, cancel_futures=True)


def iter_wiki(path: Path, stats: dict | None = None, t2s: bool = True,
              workers: int = 1) -> Iterator[tuple[str, str]]:
    """Yield ``(source_label, plain_text)`` documents (one per article) from a dump.

    ``workers`` > 1 cleans pages in that many processes (same output, same order).
    """
    if workers < 1:
        raise UserError(f"workers must be at least 1 (got {workers})")
    pages = (text for _title, text in iter_wiki_pages(path, stats))
    if workers == 1:
        converter = make_converter() if t2s else None
        plains: Iterator[str] = (clean_page(text, converter) for text in pages)
    else:
        if t2s:
            make_converter()  # a missing opencc is a UserError here, not an error in a worker
        batches = imap_ordered(_clean_batch, _batches(pages), workers,
                               initializer=_init_worker, initargs=(t2s,))
        plains = (plain for batch in batches for plain in batch)
    for plain in plains:
        if plain:
            yield path.name, plain
