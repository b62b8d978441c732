"""Streaming dump reader: namespaces, redirects, truncated and broken dumps, markup removal, and
the worker pool (same output as one process, errors and Ctrl-C do not hang)."""

from __future__ import annotations

import bz2
import os
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from zhbert.corpus import wiki
from zhbert.corpus.wiki import clean_wikitext, imap_ordered, iter_wiki, iter_wiki_pages
from zhbert.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

NS = "http://www.mediawiki.org/xml/export-0.11/"


def page(title: str, ns: int, text: str, redirect: bool = False) -> str:
    red = f'<redirect title="{title}X" />' if redirect else ""
    return (f"<page><title>{title}</title><ns>{ns}</ns><id>1</id>{red}<revision><id>2</id>"
            f'<text xml:space="preserve">{text}</text></revision></page>\n')


def dump(pages: list[str]) -> str:
    return (f'<mediawiki xmlns="{NS}" version="0.11"><siteinfo><sitename>维基百科</sitename>'
            f"</siteinfo>\n" + "".join(pages) + "</mediawiki>\n")


PAGES = [
    page("北京", 0, "'''北京'''是[[中国]]的首都，歷史悠久。"),
    page("Talk:北京", 1, "讨论页面的内容不应该出现。"),
    page("北平", 0, "#REDIRECT [[北京]]", redirect=True),
    page("上海", 0, "上海是一座国际化大都市。"),
]


def test_namespace_redirect_and_t2s(tmp_path):
    path = tmp_path / "d.xml"
    path.write_text(dump(PAGES), encoding="utf-8")
    stats: dict = {}
    docs = list(iter_wiki(path, stats))
    assert [d[1] for d in docs] == ["北京是中国的首都，历史悠久。", "上海是一座国际化大都市。"]
    assert stats == {"pages_seen": 4, "skipped_namespace": 1, "skipped_redirect": 1,
                     "truncated": False}


def test_truncated_bz2_yields_complete_pages_with_warning(tmp_path):
    # level 1 = 100 kB bz2 blocks, so the first blocks stay decodable after the cut
    data = bz2.compress(dump(PAGES * 1000).encode("utf-8"), compresslevel=1)
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(data[: len(data) * 2 // 3])
    stats: dict = {}
    with pytest.warns(UserWarning, match="truncated"):
        titles = [t for t, _ in iter_wiki_pages(path, stats)]
    assert stats["truncated"] is True
    assert 0 < len(titles) < 2000 and set(titles) == {"北京", "上海"}


def test_broken_start_is_user_error(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text("this is <not xml", encoding="utf-8")
    with pytest.raises(UserError, match="bad.xml"):
        list(iter_wiki_pages(path))
    other = tmp_path / "other.xml"
    other.write_text("<html><body/></html>", encoding="utf-8")
    with warnings.catch_warnings(), pytest.raises(UserError, match="not a MediaWiki"):
        list(iter_wiki_pages(other))


@pytest.mark.parametrize("text, expected", [
    # templates: nested, multi-line with a list line inside, unclosed (kept as text, as before)
    ("前{{a|{{b|c}}|d}}后。", "前后。"),
    ("甲{{Infobox\n|name = 某\n* 项\n|x = {{convert|1|km}}\n}}乙。", "甲乙。"),
    ("{{未闭合 文本", "{{未闭合 文本"),
    # refs (named, self-closing, holding templates) and comments
    ('文<ref name="a">{{cite web|url=http://x.org|title=题}}</ref>字<ref name=b />。<!-- 注 -->',
     "文字。"),
    # tables, also nested and indented by one space; text after |} stays
    ("表前\n{| class=wikitable\n|-\n| 甲 || {{x}}\n|\n{|\n| 内\n|}\n|}\n表后", "表前\n表后"),
    (" {|\n| 格\n |} 之后", "之后"),
    # files/images and categories vanish, link labels stay, bold/italic markup goes
    ("[[File:a.jpg|thumb|说明]][[Image:b.png]][[文件:c.jpg|图]]正文[[Category:类]][[分类:类]]",
     "正文"),
    ("'''粗体'''与''斜体''和[[北京市|北京]]及[[上海]]。", "粗体与斜体和北京及上海。"),
    # headings and list lines are dropped; parser-only content: math/gallery dropped, nowiki kept
    ("== 标题 ==\n* 列表\n# 编号\n正文", "正文"),
    ("式<math>\\frac{{a}}{b}</math>中<gallery>\nA.jpg|图\n</gallery>文。", "式中文。"),
    ("<nowiki>{{不是模板}}</nowiki>文。", "{{不是模板}}文。"),
    ("-{zh-hans:计算机;zh-hant:電腦;}-与-{软件}-。", "计算机与软件。"),
])
def test_markup_removal(text, expected):
    assert clean_wikitext(text) == expected


MARKUP_PAGES = [
    page(f"页{i}", 1 if i % 3 == 2 else 0,
         f"'''词{i}'''是[[目标|标签{i}]]{{{{模板|{i}}}}}的文本&lt;ref&gt;{{{{cite|x}}}}&lt;/ref&gt;。"
         f"\n{{| class=wikitable\n| 格 || {i}\n|}}\n* 列表\n電腦軟體第{i}段。\n[[Category:类]]")
    for i in range(60)
]


def test_pool_matches_single_process(tmp_path, monkeypatch):
    monkeypatch.setattr(wiki, "_BATCH_PAGES", 7)  # many batches, more than the in-flight window
    path = tmp_path / "m.xml"
    path.write_text(dump(MARKUP_PAGES + PAGES), encoding="utf-8")
    single_stats: dict = {}
    pool_stats: dict = {}
    single = list(iter_wiki(path, single_stats, workers=1))
    pooled = list(iter_wiki(path, pool_stats, workers=2))
    assert pooled == single and pool_stats == single_stats
    assert len(single) == 40 + 2 and single[0] == ("m.xml", "词0是标签0的文本。\n电脑软体第0段。")
    assert list(iter_wiki(path, t2s=False, workers=2)) == list(iter_wiki(path, t2s=False))
    with pytest.raises(UserError, match="workers"):
        next(iter_wiki(path, workers=0))


def test_pool_truncated_dump_keeps_complete_pages(tmp_path):
    data = bz2.compress(dump(PAGES * 1000).encode("utf-8"), compresslevel=1)
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(data[: len(data) * 2 // 3])
    stats: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(iter_wiki(path, stats, workers=2))
    assert len(caught) == 1 and "truncated" in str(caught[0].message)
    kept = stats["pages_seen"] - stats["skipped_namespace"] - stats["skipped_redirect"]
    assert stats["truncated"] is True and 0 < len(docs) == kept < 2000


def _items(consumed: list):
    for i in range(10_000):
        consumed.append(i)
        yield str(i)


def test_imap_ordered_is_bounded_and_stops_early():
    consumed: list = []
    gen = imap_ordered(int, _items(consumed), workers=2)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    assert len(consumed) <= 3 + 2 * 2  # never more than the in-flight window ahead
    t = time.monotonic()
    gen.close()  # the consumer stops early: the pool is shut down, nothing hangs
    assert time.monotonic() - t < 10


def test_worker_error_is_raised_not_hung():
    t = time.monotonic()
    with pytest.raises(ValueError, match="not-a-number"):
        list(imap_ordered(int, ["1", "2", "not-a-number"] + [str(i) for i in range(50)], workers=2))
    with pytest.raises(BrokenProcessPool):  # a worker that dies (e.g. killed for memory)
        list(imap_ordered(os._exit, [3] * 10, workers=2))
    assert time.monotonic() - t < 20


_CHILD = """
import sys, time
from pathlib import Path
from zhbert.corpus.wiki import iter_wiki
for n, _ in enumerate(iter_wiki(Path(sys.argv[1]), workers=2)):
    if n == 0:
        print("started", flush=True)
    time.sleep(0.01)  # a slow consumer: the pool is busy or waiting when Ctrl-C comes
"""


def test_ctrl_c_stops_the_pool(tmp_path):
    path = tmp_path / "big.xml"
    path.write_text(dump(MARKUP_PAGES * 100), encoding="utf-8")
    # pytest-xdist's workers ignore SIGINT and a child inherits that: restore the default
    # disposition, as in a terminal, so that Python installs its KeyboardInterrupt handler.
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "started\n"
        # Like a user, press Ctrl-C again if the first one is lost (CPython drops a
        # KeyboardInterrupt raised inside a weakref callback). What must hold is that it stops.
        err = ""
        for _ in range(60):
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
