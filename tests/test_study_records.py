"""studies/records.py: the studies' shared option checks, record reading and doc blocks."""

from __future__ import annotations

import json

import pytest

from tests.helpers_scripts import load_script
from zhbert.errors import UserError


@pytest.mark.parametrize("script", ["studies/foreign_backtest.py",
                                    "studies/synthetic_coverage.py",
                                    "studies/forecast_peers.py"])
@pytest.mark.parametrize("bad, message", [
    (["--cuts", "0.5", "0.5"], "distinct"),
    (["--cuts", "1.5"], "strictly between"),
    (["--n-boot", "0"], "--n-boot"),
    (["--seed", "-1"], "--seed"),
])
def test_bad_run_options_are_one_usage_error(script, bad, message, capsys):
    study = load_script(script)
    with pytest.raises(SystemExit) as exc:
        study.parse_args(bad)
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("script, block", [("studies/foreign_backtest.py", "foreign-backtest"),
                                           ("studies/synthetic_coverage.py",
                                            "synthetic-coverage"),
                                           ("studies/forecast_peers.py", "peers")])
def test_from_record_refuses_bad_records_and_docs_before_writing(tmp_path, script, block):
    study = load_script(script)
    out = tmp_path / "rec.json"
    blocks = "".join(f"<!-- {b}:start -->\nkept\n<!-- {b}:end -->\n"
                     for b in getattr(study, "DOC_BLOCKS", (block,)))
    doc = tmp_path / "doc.md"
    doc.write_text(blocks)
    cases = [("{", "invalid JSON"), ("[]", "not a"),
             # the keys are there but hold nothing a table can be drawn from
             (json.dumps({"summary": {}, "units": {}, "targets": {}, "rows": [{}]}), "not a"),
             (json.dumps({"summary": [], "units": [], "targets": [], "rows": []}), "not a")]
    for text, message in cases:
        out.write_text(text)
        with pytest.raises(UserError, match=message):
            study.main(["--from-record", "--json", str(out), "--update-docs", str(doc)])
        assert doc.read_text() == blocks  # untouched
    assert not out.with_suffix(".md").exists()
    # a doc that is missing, not UTF-8 or without the block: refused before the record is read
    latin = tmp_path / "latin.md"
    latin.write_bytes(b"\xff\xfe caf\xe9")
    bare = tmp_path / "bare.md"
    bare.write_text("no block\n")
    for doc_path, message in ((tmp_path / "none.md", "cannot read"), (latin, "not UTF-8"),
                              (bare, "block to update"), (tmp_path, "cannot read")):
        with pytest.raises(UserError, match=message):
            study.main(["--from-record", "--json", str(out), "--update-docs", str(doc_path)])
