"""Figures: every figure from synthetic histories, valid small PNGs, determinism, CJK font,
English-only fallback, no global side effects, and the command line (bad inputs included)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from helpers_plots import original_history, write_history, zhbert_history
from PIL import Image

from zhbert.analysis import analyze, load_history
from zhbert.errors import run_cli
from zhbert.plots import FIGURES, NEEDS, fonts, render_all, training_curves
from zhbert.plots import figures_training as ft
from zhbert.plots.style import MAX_PNG_BYTES, all_chinese_text, text

REPO = Path(__file__).resolve().parents[1]
N_BOOT = 20  # small bootstrap: the figures only need the band's shape

CASES = {
    "original": lambda: original_history(n=200, total=20_000),
    "zhbert_eval": lambda: zhbert_history(n=150, n_eval=12),
    "zhbert_no_eval": lambda: zhbert_history(n=150, with_eval=False),
    "short": lambda: original_history(n=12, total=1_200),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each case: (History, analysis dict) computed once; 'original' is compared with a 2nd run."""
    base = tmp_path_factory.mktemp("hist")
    out = {name: load_history(write_history(base, f"{name}.json", make()))
           for name, make in CASES.items()}
    other = load_history(write_history(base, "half.json", original_history(n=100, total=10_000,
                                                                            seed=7)))
    analyses = {name: analyze(h, n_boot=N_BOOT, label="main",
                              compare=[("half", other)] if name == "original" else None)
                for name, h in out.items()}
    return out, analyses, other


@pytest.mark.parametrize("case", list(CASES))
def test_every_figure_is_a_valid_small_png(case, runs, tmp_path):
    histories, analyses, other = runs
    compare = [("half", other)] if case == "original" else None
    paths = render_all(histories[case], analyses[case], tmp_path, compare=compare, label="main")
    expected = {f"{name}.png" for name in FIGURES if name not in NEEDS}  # no backtest analysed
    expected |= {"comparison_50k_100k.png"} if compare else set()
    assert {p.name for p in paths} == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)  # no temp files left
    for path in paths:
        assert path.stat().st_size < MAX_PNG_BYTES
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            w, h = img.size
            assert img.format == "PNG"
            assert 1200 <= w <= 2400 and 700 <= h <= 1800, (path.name, img.size)


def test_same_inputs_give_identical_files(runs, tmp_path):
    histories, analyses, _ = runs
    h, a = histories["zhbert_eval"], analyses["zhbert_eval"]
    for name, fmt in [("correlation_analysis", "png"), ("training_curves", "png"),
                      ("training_curves", "svg"), ("training_curves", "pdf")]:
        first = FIGURES[name](h, a, tmp_path / "a" / f"{name}.{fmt}")
        second = FIGURES[name](h, a, tmp_path / "b" / f"{name}.{fmt}")
        assert first.read_bytes() == second.read_bytes(), (name, fmt)


def test_dpi_scales_the_image(runs, tmp_path):
    histories, analyses, _ = runs
    path = training_curves(histories["short"], analyses["short"], tmp_path / "t.png", dpi=75)
    with Image.open(path) as img:
        assert img.size == (825, 562)  # 11 x 7.5 inches at 75 dpi


def test_chosen_font_has_every_chinese_glyph():
    font = fonts.resolve_font()
    assert font is not None  # mplfonts is installed, so there is always a CJK font
    chars = all_chinese_text()
    assert "准确率" in text("mlm_acc", True) and set("准确率训练步数") <= set(chars)
    assert fonts.font_covers(font.path, chars)
    assert not fonts.font_covers(font.path, "\U0010fffd")  # the check can fail


def test_only_openly_licensed_fonts_are_candidates():
    proprietary = {"SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "Hiragino Sans GB"}
    assert not proprietary & set(fonts.CJK_FAMILIES)
    assert all("SimHei" not in name for name in fonts.MPLFONTS_FILES)
    font = fonts.find_cjk_font()
    assert font is not None and "simhei" not in font.path.name.lower()


@pytest.fixture
def no_cjk_font(monkeypatch):
    monkeypatch.setattr(fonts, "find_cjk_font", lambda chars=None: None)
    fonts.reset_font_cache()
    yield
    fonts.reset_font_cache()


def test_english_fallback_warns_once_and_draws_no_chinese(runs, tmp_path, monkeypatch, no_cjk_font):
    histories, analyses, _ = runs
    seen: list[str] = []
    real_save = ft.save_figure

    def spy(fig, path, dpi):
        from matplotlib.text import Text

        seen.extend(t.get_text() for t in fig.findobj(Text))
        return real_save(fig, path, dpi)

    monkeypatch.setattr(ft, "save_figure", spy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fn in (ft.training_curves, ft.loss_analysis, ft.phases):
            fn(histories["original"], analyses["original"], tmp_path / f"{fn.__name__}.png")
    font_warnings = [w for w in caught if "Chinese glyphs" in str(w.message)]
    assert len(font_warnings) == 1
    assert any("MLM accuracy" in s for s in seen)
    assert not [s for s in seen if any("\u4e00" <= c <= "\u9fff" for c in s)]


def test_import_has_no_side_effects_and_draw_restores_rcparams(runs, tmp_path):
    code = ("import sys, zhbert.plots, zhbert.plots.fonts as f; "
            "assert 'matplotlib.pyplot' not in sys.modules; assert f._STATE == {}; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    import matplotlib

    before = dict(matplotlib.rcParams)
    histories, analyses, _ = runs
    training_curves(histories["short"], analyses["short"], tmp_path / "x.png")
    assert dict(matplotlib.rcParams) == before


def _cli(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "visualize_results.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_draws_all_figures_with_compare(tmp_path):
    main = write_history(tmp_path, "main.json", original_history(n=60, total=6_000))
    other = write_history(tmp_path, "other.json", zhbert_history(n=40, total=4_000, n_eval=10))
    res = _cli("--history", str(main), "--compare", str(other), "--labels", "run A", "run B",
               "--out-dir", str(tmp_path / "out"), "--format", "svg", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted([f"{n}.svg" for n in FIGURES if n not in NEEDS]
                           + ["comparison_50k_100k.svg"])
    assert "run B" in (tmp_path / "out" / "comparison_50k_100k.svg").read_text(encoding="utf-8")


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["--history", str(d / "missing.json")], "not found"),
    (lambda d: ["--history", str(write_bad(d, "{not json"))], "invalid JSON"),
])
def test_cli_bad_input_is_one_error_line(tmp_path, make_args, message):
    res = _cli(*make_args(tmp_path), "--out-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["--history", str(write_bad(d, '{"steps": [1, 2]}'))], "mlm_acc"),
    (lambda d: ["--history", str(write_history(d, "h.json", original_history(n=20))),
                "--labels", "a", "b"], "--labels"),
    (lambda d: ["--history", str(write_history(d, "h.json", original_history(n=20))),
                "--analysis", str(write_bad(d, "[1, 2]"))], "not an analysis file"),
    (lambda d: ["--history", str(write_history(d, "h.json", original_history(n=20))),
                "--analysis", str(write_bad(d, '{"series": {"kind": "train", "n": 99}}'))],
     "does not match"),
])
def test_cli_bad_input_in_process(tmp_path, capsys, make_args, message):
    """The same front end called in-process (faster than a subprocess per case)."""
    import visualize_results

    with pytest.raises(SystemExit) as exc:
        run_cli(visualize_results.main, [*make_args(tmp_path), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def write_bad(directory: Path, content: str) -> Path:
    """A history/analysis file with the given (broken) content."""
    path = directory / "bad.json"
    path.write_text(content, encoding="utf-8")
    return path


def test_cli_uses_a_precomputed_analysis(runs, tmp_path, capsys):
    import json

    import visualize_results

    histories, analyses, _ = runs
    path = histories["short"].path
    (tmp_path / "a.json").write_text(json.dumps(analyses["short"]), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        run_cli(visualize_results.main, ["--history", str(path), "--analysis",
                                         str(tmp_path / "a.json"), "--format", "pdf",
                                         "--out-dir", str(tmp_path / "out")])
    assert exc.value.code == 0, capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"{n}.pdf" for n in FIGURES if n not in NEEDS)
    assert all((tmp_path / "out" / n).read_bytes().startswith(b"%PDF") for n in names)


def test_cli_draws_a_constant_accuracy_history(tmp_path, capsys):
    """Issue 25 item 9: a constant series' forecast interval sits a rounding error beside its
    value; the error bars are clipped to zero width instead of matplotlib refusing them."""
    import json

    import visualize_results

    n = 12
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"steps": list(range(10, 10 * n + 1, 10)), "mlm_acc": [0.05] * n,
                                "loss": [6.0 - 0.01 * i for i in range(n)], "lr": [1e-3] * n}))
    with pytest.raises(SystemExit) as exc:
        run_cli(visualize_results.main, ["--history", str(path), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exc.value.code == 0, err
    assert (tmp_path / "o" / "learning_curve_fit.png").stat().st_size > 0


def test_error_bars_are_never_negative():
    from zhbert.plots.common import error_bars

    down, up = error_bars(0.05000000000000001, 0.04999999999999984, 0.049999999999999885)
    assert down.tolist() == [pytest.approx(1.7e-16, abs=1e-16)] and up.tolist() == [0.0]
    down, up = error_bars([0.5, 0.6], [0.4, 0.61], [0.7, 0.65])
    assert down.tolist() == pytest.approx([0.1, 0.0]) and up.tolist() == pytest.approx([0.2, 0.05])


def test_no_backtest_figure_without_a_backtest(runs, tmp_path, capsys):
    """Issue 25 item 10: without a backtest in the analysis no backtest.png is written (it used
    to be an empty placeholder); the command line says so in one line. With one, it is drawn."""
    import json

    import visualize_results

    histories, analyses, _ = runs
    h, a = histories["original"], analyses["original"]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(a), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        run_cli(visualize_results.main, ["--history", str(h.path), "--analysis", str(path),
                                         "--out-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert not (tmp_path / "out" / "backtest.png").exists()
    assert [line for line in out.splitlines() if "backtest.png" in line] == [
        f"skipped {tmp_path / 'out' / 'backtest.png'}: the analysis has no backtest "
        "(draw it with --analysis from analyze_100k.py --backtest)"]
    from zhbert.plots import skipped_figures

    no_record = {"downstream": "no downstream scores file was given"}
    assert skipped_figures(a) == {"backtest": "the analysis has no backtest", **no_record}
    with_bt = analyze(h, n_boot=N_BOOT, label="main", backtest_cuts=[0.5])
    assert skipped_figures(with_bt) == no_record
    paths = render_all(h, with_bt, tmp_path / "bt")
    assert tmp_path / "bt" / "backtest.png" in paths
