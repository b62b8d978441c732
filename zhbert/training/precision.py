"""Which precision a run computes in, chosen by what the device does, not by what it is called.

``run.precision=auto`` resolves here:

* on a GPU, bf16 where the chip computes it natively (compute capability 8.0+, or ROCm), else
  fp16 with a GradScaler;
* on a CPU, bf16 only where oneDNN reports native bf16 *and* a short probe at the model's own
  matmul shapes shows bf16 faster than fp32; fp32 otherwise. Most CPUs people own (Intel client
  chips, Xeons before Cooper Lake, AMD before Zen 4, most ARM) emulate bf16, many times slower
  than fp32.

The result is a :class:`PrecisionChoice`: the precision, a one-line reason, and on a CPU the
measured fp32/bf16 time ratio of the probe; training logs it and keeps it in ``meta``.

>>> PrecisionChoice("fp32", "asked for (run.precision=fp32)").record()
{'precision': 'fp32', 'requested': 'fp32', 'reason': 'asked for (run.precision=fp32)'}
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch

#: bf16 must be at least this much faster than fp32 in the probe for ``auto`` to pick it
#: (a tie is not worth bf16's coarser rounding).
MIN_BF16_SPEEDUP = 1.15


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``run.precision`` resolved to, and why."""

    precision: str  # "bf16", "fp16" or "fp32"
    reason: str  # one line
    requested: str = ""  # the config's value ("auto", "bf16", ...); "" = same as precision
    bf16_speedup: float | None = None  # probe: fp32 time / bf16 time (CPU only)
    warning: str | None = None  # an explicit choice that will run slowly

    def record(self) -> dict:
        """The JSON form kept in the history's ``meta.precision_choice``."""
        out = {"precision": self.precision, "requested": self.requested or self.precision,
               "reason": self.reason}
        if self.bf16_speedup is not None:
            out["bf16_speedup"] = round(self.bf16_speedup, 3)
        if self.warning:
            out["warning"] = self.warning
        return out


def gpu_native_bf16(device: torch.device) -> bool:
    """Whether the GPU computes bf16 in hardware: compute capability 8.0+ (Ampere and newer),
    or any ROCm GPU.

    Not ``torch.cuda.is_bf16_supported()``: by default it also answers True where bf16 is only
    emulated (Volta, Turing, Pascal: no tensor cores, SDPA's math kernel, or failures).
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8


def cpu_native_bf16() -> bool:
    """Whether oneDNN reports native bf16 on this CPU (AVX-512 BF16, AMX, or Arm BF16).

    ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` in the environment makes it False on a
    CPU that has it, which reproduces a CPU without bf16 hardware.
    """
    with contextlib.suppress(Exception):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def probe_shapes(hidden: int, intermediate: int, tokens: int, gated: bool) -> tuple[int, int, int]:
    """``(rows, inner, cols)`` of the probe matmul: the FFN's input projection of one batch, at
    most 1,024 rows (so that an emulated bf16 probe stays well under a second).

    >>> probe_shapes(256, 640, 4096, gated=True)
    (1024, 256, 1280)
    """
    return min(tokens, 1024), hidden, intermediate * (2 if gated else 1)


def _best_time(a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    torch.mm(a, b)  # first call: kernel selection, packing
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return best


def probe_bf16_speedup(rows: int, inner: int, cols: int, repeats: int = 3) -> float:
    """fp32 time over bf16 time of a ``rows x inner @ inner x cols`` matmul on this CPU (> 1:
    bf16 is faster). Best of ``repeats`` after one untimed call each."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=g)
    b = torch.randn(inner, cols, generator=g)
    fp32 = _best_time(a, b, repeats)
    bf16 = _best_time(a.bfloat16(), b.bfloat16(), repeats)
    return fp32 / max(bf16, 1e-9)


def _model_probe(model_cfg, tokens: int) -> tuple[int, int, int]:
    return probe_shapes(model_cfg.hidden_size, model_cfg.intermediate_size, tokens,
                        gated=getattr(model_cfg, "arch", "bert") == "modern")


def choose_precision(requested: str, device: torch.device, model_cfg=None, tokens: int = 1024,
                     *, native=None, probe=None) -> PrecisionChoice:
    """Resolve ``requested`` (``run.precision``) on ``device``.

    ``model_cfg`` (a :class:`zhbert.model_config.BertConfig`) and ``tokens`` (tokens per
    micro-batch) size the CPU probe; ``native`` and ``probe`` replace :func:`cpu_native_bf16` and
    :func:`probe_bf16_speedup` (tests).

    >>> choose_precision("auto", torch.device("cpu"), native=lambda: False).precision
    'fp32'
    >>> choose_precision("auto", torch.device("cpu"), native=lambda: True,
    ...                  probe=lambda *shape: 3.0).reason
    "CPU with native bf16, 3.00x faster than fp32 at the model's matmul shape (1024x256x1024)"
    """
    if device.type == "cuda":
        return _choose_gpu(requested, device)
    native = native or cpu_native_bf16
    probe = probe or probe_bf16_speedup
    shape = _model_probe(model_cfg, tokens) if model_cfg is not None else (1024, 256, 1024)
    dims = "x".join(map(str, shape))
    if requested == "fp32":
        return PrecisionChoice("fp32", "asked for (run.precision=fp32)", requested)
    if requested == "fp16":
        return PrecisionChoice("fp16", "asked for (run.precision=fp16; CPU fp16 autocast with a "
                                       "GradScaler, slower than fp32 on most CPUs)", requested)
    has = native()
    if requested == "bf16":
        # emulated bf16 can be hundreds of times slower: a few rows tell the ratio as well
        ratio = probe(*shape) if has else probe(min(shape[0], 64), *shape[1:], repeats=1)
        warning = None
        if not has or ratio < 1.0:
            warning = (f"warning: run.precision=bf16 on a CPU "
                       f"{'without native bf16' if not has else 'where bf16 is not faster'}: "
                       f"a bf16 matmul at the model's shape ({dims}) runs {1 / ratio:.1f}x "
                       "slower than fp32 here; run.precision=auto picks fp32")
        return PrecisionChoice("bf16", "asked for (run.precision=bf16)", requested, ratio,
                               warning)
    if not has:
        return PrecisionChoice("fp32", "CPU without native bf16 (oneDNN reports none): bf16 "
                                       "would be emulated, far slower than fp32", requested)
    ratio = probe(*shape)
    if ratio >= MIN_BF16_SPEEDUP:
        return PrecisionChoice("bf16", f"CPU with native bf16, {ratio:.2f}x faster than fp32 at "
                                       f"the model's matmul shape ({dims})", requested, ratio)
    return PrecisionChoice("fp32", f"CPU with native bf16, but only {ratio:.2f}x the speed of "
                                   f"fp32 at the model's matmul shape ({dims}; bf16 needs "
                                   f"{MIN_BF16_SPEEDUP:.2f}x)", requested, ratio)


def _choose_gpu(requested: str, device: torch.device) -> PrecisionChoice:
    if requested != "auto":
        return PrecisionChoice(requested, f"asked for (run.precision={requested})", requested)
    cap = ".".join(map(str, torch.cuda.get_device_capability(device)))
    if gpu_native_bf16(device):
        return PrecisionChoice("bf16", f"GPU with native bf16 (compute capability {cap})",
                               requested)
    return PrecisionChoice("fp16", f"GPU without native bf16 (compute capability {cap} < 8.0): "
                                   "fp16 with a GradScaler", requested)
