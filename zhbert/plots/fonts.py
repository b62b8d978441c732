"""CJK font discovery: openly licensed system fonts first, then the Noto font shipped by the
``mplfonts`` package (SIL Open Font License 1.1).

Discovery and registration with matplotlib's font manager happen lazily on the first figure
(:func:`resolve_font`), never at import time. Coverage of every Chinese character used in the
labels is verified with fontTools before a font is accepted.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

# Openly licensed families known to cover simplified Chinese, in order of preference: Noto Sans
# CJK and Source Han Sans (SIL Open Font License 1.1), WenQuanYi (GPL with a font-embedding
# exception / Apache 2.0), AR PL UMing (Arphic Public License). Proprietary system fonts (SimHei,
# Microsoft YaHei, PingFang, Heiti, Hiragino) are never picked: PDF and SVG output embeds glyphs.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "AR PL UMing CN",
)
# Fonts shipped by mplfonts, all under the SIL Open Font License (its SimHei.ttf is not used).
MPLFONTS_FILES = ("NotoSansCJKsc-Regular.otf", "SourceHanSerifSC-Regular.otf")
LATIN_FALLBACK = "DejaVu Sans"


@dataclass(frozen=True)
class CJKFont:
    """A font file with glyphs for all required Chinese characters."""

    name: str  # matplotlib family name
    path: Path
    source: str  # "system" or "mplfonts"


def font_covers(path: str | Path, chars: str) -> bool:
    """True when the font file at ``path`` maps every character of ``chars`` (fontTools cmap)."""
    from fontTools.ttLib import TTFont

    try:
        # lazy=True reads only the tables asked for; font collections (.ttc) use the first face.
        font = TTFont(str(path), lazy=True, fontNumber=0)
        try:
            cmap = font.getBestCmap() or {}
        finally:
            font.close()
    except Exception:  # unreadable or unsupported font file: treat as not covering
        return False
    return all(ord(c) in cmap for c in chars)


def _system_candidates() -> list[tuple[str, Path]]:
    """(family, file) of system fonts with a known CJK family name, in preference order."""
    from matplotlib import font_manager

    by_name: dict[str, list[Path]] = {}
    for entry in font_manager.fontManager.ttflist:
        by_name.setdefault(entry.name, []).append(Path(entry.fname))
    found = []
    for family in CJK_FAMILIES:
        # Prefer regular weights: matplotlib picks by weight anyway, this only orders checks.
        paths = sorted(by_name.get(family, []), key=lambda p: ("bold" in p.name.lower(), str(p)))
        for path in paths:
            found.append((family, path))
    return found


def mplfonts_dir() -> Path | None:
    """The ``fonts`` folder of the installed mplfonts package, located without importing it."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "fonts"
    return folder if folder.is_dir() else None


def find_cjk_font(chars: str | None = None) -> CJKFont | None:
    """Find a font covering ``chars`` (default: all Chinese label text); None when there is none."""
    from zhbert.plots.style import all_chinese_text

    chars = all_chinese_text() if chars is None else chars
    for family, path in _system_candidates():
        if font_covers(path, chars):
            return CJKFont(family, path, "system")
    folder = mplfonts_dir()
    for filename in MPLFONTS_FILES if folder else ():
        path = folder / filename
        if path.is_file() and font_covers(path, chars):
            from matplotlib import font_manager

            name = font_manager.FontProperties(fname=str(path)).get_name()
            return CJKFont(name, path, "mplfonts")
    return None


_STATE: dict[str, object] = {}


def resolve_font() -> CJKFont | None:
    """Find (once per process) and register the CJK font; warn once when none exists."""
    if "font" in _STATE:
        return _STATE["font"]  # type: ignore[return-value]
    font = find_cjk_font()
    if font is None:
        warnings.warn(
            "no font with Chinese glyphs found (system fonts or mplfonts); "
            "figures use English-only labels",
            RuntimeWarning,
            stacklevel=2,
        )
    elif font.source != "system":
        from matplotlib import font_manager

        # Registers the file for this process only; mplfonts' own setup (which edits the user's
        # matplotlib config) is deliberately not used.
        font_manager.fontManager.addfont(str(font.path))
    _STATE["font"] = font
    return font


def reset_font_cache() -> None:
    """Forget the resolved font (tests use this to exercise discovery again)."""
    _STATE.clear()


def font_family(font: CJKFont | None) -> list[str]:
    """rcParams ``font.family`` list: the CJK font first, DejaVu Sans for anything it lacks."""
    return [font.name, LATIN_FALLBACK] if font else [LATIN_FALLBACK]
