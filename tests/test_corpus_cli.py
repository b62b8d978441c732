"""Bad inputs to examples/prepare_dataset.py: one error line, non-zero exit, no traceback."""

from __future__ import annotations

import bz2
import errno
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_scripts import load_script

from zhbert.errors import run_cli

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "prepare_dataset.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--quiet", *args], capture_output=True,
                          text=True, timeout=120)


def check_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and all(n in lines[0] for n in needles), proc.stderr


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "short.txt").write_text("短。\n\n也短。\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("中文句子".encode("gbk"))
    (tmp_path / "broken.xml").write_text("<<not xml", encoding="utf-8")
    (tmp_path / "x.jsonl").write_text('{"body": "文本"}\n', encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("source", "name", "needles"), [
    ("text", "missing.txt", ("missing.txt", "not found")),
    ("text", "empty.txt", ("empty.txt", "empty corpus")),
    ("text", "short.txt", ("short.txt", "filtered out")),
    ("text", "latin1.txt", ("latin1.txt", "UTF-8")),
    ("wiki", "broken.xml", ("broken.xml", "XML")),
    ("jsonl", "x.jsonl", ("x.jsonl:1", "'text'")),
])
def test_bad_inputs(files, source, name, needles):
    out = files / "out"
    check_error(run("--source", source, "--input", str(files / name), "--out-dir", str(out)),
                *needles)
    assert not out.exists()  # nothing half-written


def test_unknown_source_and_nonempty_out_dir(tmp_path):
    proc = run("--source", "nope", "--out-dir", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "invalid choice" in proc.stderr
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("x")
    check_error(run("--out-dir", str(tmp_path / "o")), "not empty", "--overwrite")
    assert (tmp_path / "o" / "keep.txt").exists()


def test_truncated_wiki_warns_and_succeeds(tmp_path):
    body = "".join(
        f"<page><title>页{i}</title><ns>0</ns><revision><text>第{i}篇文章讲述了一个相当长的中文故事，"
        f"内容包括历史、地理和文化等多个方面的知识{i}。</text></revision></page>\n"
        for i in range(3000))
    xml = f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/">{body}</mediawiki>'
    data = bz2.compress(xml.encode("utf-8"), compresslevel=1)
    dump = tmp_path / "cut.xml.bz2"
    dump.write_bytes(data[: len(data) // 2])
    proc = run("--source", "wiki", "--input", str(dump), "--out-dir", str(tmp_path / "w"),
               "--min-length", "10", "--min-val-sentences", "10")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "warning:" in proc.stderr and "truncated" in proc.stderr
    assert (tmp_path / "w" / "dataset_stats.json").is_file()


@pytest.mark.parametrize(("code", "detail"), [(errno.ENOSPC, ""),
                                              (errno.EDQUOT, " (disk quota exceeded)")])
def test_full_disk_is_one_error_line(tmp_path, monkeypatch, capsys, code, detail):
    """Issue 25 item 8: a full disk (or quota) while the splits are written is one line naming
    the output directory and saying so, exit 2, no traceback; nothing is left behind."""
    import warnings

    from zhbert.corpus import binary

    def full(*args, **kwargs):
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(binary, "write_split", full)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main replaces it
    script = load_script("examples/prepare_dataset.py")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        run_cli(script.main, ["--quiet", "--max-documents", "20", "--min-val-sentences", "5",
                              "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err == f"error: cannot write {out}: no space left on device{detail}\n"
    assert list(tmp_path.iterdir()) == []  # no corpus, no temporary directory


def test_overwrite_names_the_files_it_did_not_write_and_keeps_them(tmp_path, monkeypatch, capsys):
    """Issue 25 item 12: --overwrite replaces a prepared corpus directory whole, so a file (or
    folder) the preparation did not write is named in a refusal and survives, with the corpus;
    without them --overwrite goes ahead."""
    import warnings

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main replaces it
    script = load_script("examples/prepare_dataset.py")
    out = tmp_path / "corpus"
    args = ["--quiet", "--max-documents", "20", "--min-val-sentences", "5", "--out-dir", str(out)]
    assert script.main(args) == 0
    written = {p.name for p in out.iterdir()}
    meta = (out / "corpus_meta.json").read_bytes()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    (out / "runs").mkdir()
    with pytest.raises(SystemExit) as exc:
        run_cli(script.main, [*args, "--overwrite", "--seed", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert "notes.txt, runs/" in err and "did not write" in err
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me" and (out / "runs").is_dir()
    assert (out / "corpus_meta.json").read_bytes() == meta
    (out / "notes.txt").unlink()
    (out / "runs").rmdir()
    assert script.main([*args, "--overwrite", "--seed", "1"]) == 0
    from zhbert.corpus.prepare import OUTPUT_FILES

    assert {p.name for p in out.iterdir()} == written == OUTPUT_FILES  # the pipeline's own files
