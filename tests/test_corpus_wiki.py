"""Streaming dump reader: namespaces, redirects, truncated and broken dumps."""

from __future__ import annotations

import bz2
import warnings

import pytest

from zhbert.corpus.wiki import iter_wiki, iter_wiki_pages
from zhbert.errors import UserError

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
