"""The measurement environment shared by the timing benchmarks (``benchmarks/train_throughput.py``,
``optimizer_step.py``, ``gpu_check.py``, ``live_overhead.py``): machine description, load, bf16
support, device sync, the matmul peak that MFU is measured against, and the demo corpus.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch


def machine_info(device: str, threads: int) -> dict:
    """CPU model, cores, library versions, load average."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import transformers

    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "device": device, "date": datetime.date.today().isoformat()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    else:  # what the kernels may use here, and any variable that narrowed it
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["bf16_native"] = bf16_supported("cpu")
        limits = {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ}
        if limits:
            info["isa_limits"] = limits
    return info


#: environment variables that make a CPU with bf16 instructions behave like one without
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def load_avg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def bf16_supported(device: str) -> bool:
    """Native bf16 on ``device`` (the rule ``run.precision=auto`` starts from)."""
    from zhbert.training.precision import cpu_native_bf16, gpu_native_bf16

    return gpu_native_bf16(torch.device("cuda")) if device == "cuda" else cpu_native_bf16()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype: str, device: str, n: int | None = None) -> float:
    """Best FLOP/s of a square ``n x n`` matmul in ``dtype`` (same threads as the model)."""
    n = n or (8192 if device == "cuda" else 1536)
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32)
    a = torch.randn(n, n, device=device).to(dt)
    b = torch.randn(n, n, device=device).to(dt)
    best = float("inf")
    for _ in range(6):
        sync(device)
        t = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def ensure_corpus(path: Path):
    """CorpusInfo of ``path``; the bundled demo corpus is prepared there when it is missing."""
    from zhbert.corpus import load_corpus_info, prepare_corpus

    if not (path / "corpus_meta.json").is_file():
        print(f"preparing the demo corpus into {path} ...", file=sys.stderr)
        prepare_corpus("demo", out_dir=path, progress=False)
    return load_corpus_info(path)
