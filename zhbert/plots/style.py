"""One plotting style for every figure: palette, sizes, bilingual label table, deterministic saving.

Nothing here touches matplotlib's global state at import time; :func:`style_context` applies the
settings inside ``matplotlib.rc_context`` so that callers' rcParams are restored afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zhbert.errors import UserError
from zhbert.io_utils import atomic_write_bytes

DEFAULT_DPI = 150
FORMATS = ("png", "svg", "pdf")
MAX_PNG_BYTES = 1_000_000

# Okabe & Ito (2008) colour-blind-safe palette; black first is left out of the cycle because data
# lines are drawn on white, black is kept for reference lines.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "grey": "#999999",
}
CYCLE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky_blue",
                                "yellow", "black")]
# Semantic roles, so that the same quantity has the same colour in every figure.
COLORS = {
    "train": OKABE_ITO["blue"],
    "eval": OKABE_ITO["vermillion"],
    "smooth": OKABE_ITO["black"],
    "linear": OKABE_ITO["orange"],
    "best": OKABE_ITO["green"],
    "band": OKABE_ITO["green"],
    "lr": OKABE_ITO["purple"],
    "tail": OKABE_ITO["grey"],
    "change": OKABE_ITO["vermillion"],
    "nsp": OKABE_ITO["green"],
    "aux": OKABE_ITO["sky_blue"],
    "baseline": "#555555",
    "forecast": OKABE_ITO["green"],
}

FONT_SIZES = {"base": 9.5, "title": 11, "suptitle": 13, "small": 8, "legend": 8}

# Every piece of text shown on a figure: key -> (English, Chinese). The English-only fallback
# simply drops the second element.
LABELS: dict[str, tuple[str, str]] = {
    "step": ("Training step", "训练步数"),
    "mlm_acc": ("MLM accuracy", "MLM准确率"),
    "nsp_acc": ("NSP accuracy", "NSP准确率"),
    "loss": ("Loss", "损失"),
    "eval_loss": ("Held-out loss", "验证集损失"),
    "lr": ("Learning rate", "学习率"),
    "tokens_per_s": ("Throughput (tokens/s)", "吞吐量"),
    "train": ("training batches", "训练批次"),
    "eval": ("held-out", "验证集"),
    "ema": ("EMA smoothed", "指数平滑"),
    "training_curves": ("Training curves", "训练曲线"),
    "correlation": ("Step vs accuracy", "步数与准确率"),
    "correlation_title": ("Correlation analysis", "相关性分析"),
    "statistics": ("Statistics", "统计量"),
    "residuals": ("Residuals", "残差"),
    "acf": ("Residual autocorrelation", "残差自相关"),
    "lag": ("Lag", "滞后"),
    "linear_fit": ("Linear fit", "线性拟合"),
    "best_fit": ("Best fit", "最佳拟合"),
    "comparison": ("Run comparison", "训练对比"),
    "diff_vs_ref": ("Difference vs reference", "与参照差值"),
    "matched": ("matched steps", "对齐步数"),
    "loss_analysis": ("Loss analysis", "损失分析"),
    "loglog": ("Loss (log-log)", "损失(双对数)"),
    "loss_fit": ("Fitted loss curve", "损失拟合曲线"),
    "loss_per_phase": ("Loss reduction per quarter", "各阶段损失下降"),
    "phase": ("Quarter", "阶段"),
    "reduction": ("Loss reduction", "损失下降"),
    "learning_curve": ("Learning-curve fits", "学习曲线拟合"),
    "heldout_tail": ("held-out tail (last 20%)", "留出尾段"),
    "band95": ("95% band", "95%区间"),
    "target": ("target step", "目标步数"),
    "phases": ("Training phases", "训练阶段"),
    "change_point": ("change point", "变化点"),
    "lr_peak_end_of_warmup": ("end of warm-up", "预热结束"),
    "lr_near_zero": ("lr near zero", "学习率趋零"),
    "baseline_unigram": ("unigram", "最高频字"),
    "baseline_left_bigram": ("left bigram", "左邻二元"),
    "baseline_right_bigram": ("right bigram", "右邻二元"),
    "baseline_gap_trigram": ("gap trigram", "左右三元"),
    "live_forecast": ("live forecast of the last step", "最终步数的实时预测"),
    "no_data": ("not recorded", "无数据"),
    "backtest": ("Forecast backtest", "预测回测"),
    "cut": ("Cut (fraction of the last step)", "截断比例"),
    "forecast": ("forecast, 95% interval", "预测值及95%区间"),
    "missed": ("interval missed", "区间未覆盖"),
    "actual": ("actual", "实际值"),
    "no_backtest": ("no backtest: run analyze_100k.py --backtest", "无回测"),
    "fit_failed": ("fit unavailable", "拟合不可用"),
    "downstream": ("Downstream score against pretraining", "下游任务得分与预训练"),
    "pretrain_step": ("Pretraining step", "预训练步数"),
    "heldout_mlm_acc": ("Held-out MLM accuracy", "验证集MLM准确率"),
    "test_score": ("test score", "测试得分"),
    "random_init": ("random init", "随机初始化"),
    "random_init_mean": ("random-init mean", "随机初始化均值"),
    "mean_sd": ("mean ± SD of seeds", "均值±标准差"),
    "seeds": ("seeds", "各随机种子"),
    "stops_paying": ("stops paying", "收益饱和"),
    "still_rising": ("still paying at the last step", "末步仍在提升"),
    "no_heldout_mlm": ("no held-out MLM accuracy at these steps", "无验证集准确率"),
    "no_downstream": ("no downstream scores", "无下游任务得分"),
    "task_ner": ("NER", "命名实体识别"),
    "task_cws": ("Word segmentation", "中文分词"),
    "task_sentiment": ("Sentiment", "情感分类"),
    "task_pos": ("POS tagging", "词性标注"),
}


def text(key: str, cjk: bool) -> str:
    """Label for ``key``: ``"English | 中文"`` when a CJK font is available, else English only."""
    en, zh = LABELS[key]
    return f"{en} | {zh}" if cjk and zh else en


def all_chinese_text() -> str:
    """Every distinct non-ASCII character used in labels (for glyph-coverage checks)."""
    chars = {c for _, zh in LABELS.values() for c in zh if ord(c) > 127}
    return "".join(sorted(chars))


def rc_params(font_family: list[str]) -> dict[str, Any]:
    """rcParams of the house style (fonts first, DejaVu Sans as fallback for Latin/maths)."""
    from cycler import cycler

    return {
        "font.family": font_family,
        "font.size": FONT_SIZES["base"],
        "axes.titlesize": FONT_SIZES["title"],
        "axes.labelsize": FONT_SIZES["base"],
        "figure.titlesize": FONT_SIZES["suptitle"],
        "legend.fontsize": FONT_SIZES["legend"],
        "xtick.labelsize": FONT_SIZES["small"],
        "ytick.labelsize": FONT_SIZES["small"],
        "axes.prop_cycle": cycler(color=CYCLE),
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "lines.linewidth": 1.4,
        "legend.frameon": False,
        "axes.unicode_minus": False,  # the CJK font may lack U+2212
        "svg.hashsalt": "zhbert",  # fixed ids -> byte-identical SVGs
        "savefig.dpi": DEFAULT_DPI,
        "path.simplify": True,
    }


@contextlib.contextmanager
def style_context(font_family: list[str]) -> Iterator[None]:
    """Apply the house style temporarily (restores the caller's rcParams on exit)."""
    import matplotlib

    with matplotlib.rc_context(rc_params(font_family)):
        yield


def new_figure(figsize: tuple[float, float]):
    """A pyplot-free ``Figure`` bound to an Agg canvas (no global figure registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def output_format(path: str | os.PathLike) -> str:
    """The figure format implied by the path's suffix (png, svg or pdf)."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"{path}: unsupported figure format {fmt!r} "
                        f"(use one of {', '.join(FORMATS)})")
    return fmt


_METADATA = {
    # Fixed/empty metadata: no software version or timestamps, so identical inputs give
    # byte-identical files.
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None},
}


def save_figure(fig, path: str | os.PathLike, dpi: int = DEFAULT_DPI) -> Path:
    """Render ``fig`` to memory and write it atomically to ``path``; returns the path."""
    path = Path(path)
    fmt = output_format(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    atomic_write_bytes(path, buf.getvalue())
    return path
