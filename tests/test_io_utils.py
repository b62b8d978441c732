"""zhbert.io_utils: the generated-block writer of the docs and the README."""

from __future__ import annotations

import pytest

from zhbert.errors import UserError
from zhbert.io_utils import replace_marked_block


def test_replace_marked_block_rewrites_only_between_the_markers(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("head\n<!-- t:start -->\nold\n<!-- t:end -->\ntail\n<!-- u:start -->x<!-- u:end -->\n")
    replace_marked_block(doc, "t", "new 1\nnew 2\n\n")
    assert doc.read_text() == ("head\n<!-- t:start -->\nnew 1\nnew 2\n<!-- t:end -->\ntail\n"
                               "<!-- u:start -->x<!-- u:end -->\n")
    replace_marked_block(doc, "t", "again")  # idempotent shape: the markers stay
    assert "<!-- t:start -->\nagain\n<!-- t:end -->" in doc.read_text()
    with pytest.raises(UserError, match="no <!-- v:start --> ... <!-- v:end --> block"):
        replace_marked_block(doc, "v", "x")
    assert list(tmp_path.iterdir()) == [doc]  # no temporary file left behind
