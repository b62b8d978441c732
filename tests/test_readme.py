"""README.md's results table is exactly what the committed demo run's files say."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _run_demo_module():
    return load_script("examples/run_demo.py")


def test_readme_results_tables_match_committed_results():
    """Each demo preset's README block is the table of its committed reference run."""
    run_demo = _run_demo_module()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for preset, (folder, name) in run_demo.REFERENCES.items():
        start, end = run_demo.readme_markers(name)
        block = readme.split(start, 1)[1].split(end, 1)[0]
        assert block.strip() == run_demo.results_table(ROOT / folder).strip(), preset
        meta = json.loads((ROOT / folder / "training_history.json").read_text())["meta"]
        assert meta["preset"] == preset
    assert run_demo.readme_markers("demo-results") == (run_demo.README_START, run_demo.README_END)


def test_readme_shows_every_committed_figure():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    figures = sorted(p.name for p in (ROOT / "results" / "demo_bf16").glob("*.png"))
    assert figures, "the demo figures are committed in results/demo_bf16/"
    for name in figures:
        if name != "comparison_50k_100k.png":
            assert f"results/demo_bf16/{name}" in readme, name


def test_readme_first_screen_figure_is_the_committed_runs():
    """The one figure quoted next to the two commands is the `demo` reference run's final held-out
    accuracy (``make reference`` does not rewrite that sentence: edit it when this fails)."""
    folder = ROOT / _run_demo_module().REFERENCES["demo"][0]
    history = json.loads((folder / "training_history.json").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"predicts\s+\*\*(\d+\.\d\d%)\*\*\s+of the masked tokens", readme)
    assert quoted, "README's first screen states the demo's final held-out accuracy"
    assert quoted.group(1) == f"{history['eval_mlm_acc'][-1]:.2%}"
    assert readme.index(quoted.group(0)) < readme.index("## Results of the demo run")
