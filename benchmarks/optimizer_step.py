"""Time ``optimizer.step()`` alone: fused vs foreach vs for-loop AdamW on the presets' models.

python benchmarks/optimizer_step.py [--arch paper demo] [--impl fused foreach default]
       [--threads 2] [--repeats 20] [--warmup 3] [--set KEY=VALUE] [--json OUT]

Each preset's model is built as it trains (``zhbert.models.build_model``: paper with its untied
decoder and NSP head, demo modern, the vocabulary as ``benchmarks/train_throughput.py`` sizes it)
and gets fixed random gradients. One AdamW per implementation is made with
``zhbert.training.optim.make_optimizer`` (two weight-decay groups, the preset's lr, betas, eps),
``optim.fused`` set to ``fused``, ``foreach`` or ``default`` (the plain for-loop). The three
optimizers update the same parameters and take turns, the order rotating every repeat, so load on
a shared machine falls on all of them alike; the step time does not depend on the values. Only
``step()`` is timed (no forward, backward, clipping or ``zero_grad``). The records hold every time,
the median and the minimum, and the preset's own choice (``optim.fused="auto"`` picks fused on the
CPU and CUDA).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from zhbert.bench.env import ensure_corpus, load_avg, machine_info, sync  # noqa: E402
from zhbert.bench.models import model_config, preset  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402

ARCHS = ("paper", "demo", "efficient", "smoke")
IMPLS = ("fused", "foreach", "default")  # optim.fused values; "default" is the for-loop
LABELS = {"fused": "fused", "foreach": "foreach", "default": "for-loop"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="data/demo",
                   help="prepared corpus dir that sizes the vocabulary (the demo corpus is "
                        "prepared there if missing)")
    p.add_argument("--arch", nargs="+", choices=ARCHS, default=["paper", "demo"],
                   help="presets whose model is updated")
    p.add_argument("--impl", nargs="+", choices=IMPLS, default=list(IMPLS),
                   help="AdamW implementations (optim.fused values; default = for-loop)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied to every preset (as main_train.py's --set)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=20, help="timed steps per implementation")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per implementation")
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up")
    p.add_argument("--json", default=None, help="write the records (one per arch x impl) here")
    return p.parse_args(argv)


def model_with_grads(arch: str, info, overrides, device: torch.device):
    """The preset's model as trained, with fixed random gradients on every parameter."""
    from zhbert.models import build_model

    cfg = model_config(arch, info, overrides=overrides, mlm_only=False)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def time_steps(optimizers: dict, warmup: int, repeats: int, device: str) -> dict[str, list]:
    """Seconds of each timed ``step()``, implementations taking turns (order rotating)."""
    names = list(optimizers)
    times = {n: [] for n in names}
    for r in range(warmup + repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            sync(device)
            t = time.perf_counter()
            optimizers[name].step()
            sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - t)
    return times


def run_arch(arch: str, args, info, machine: dict) -> list[dict]:
    """One record per implementation for ``arch``'s model."""
    from zhbert.training.optim import make_optimizer

    dev = torch.device(args.device)
    ocfg = preset(arch, args.overrides).optim
    model = model_with_grads(arch, info, args.overrides, dev)
    optimizers = {i: make_optimizer(model, replace(ocfg, fused=i), dev) for i in args.impl}
    auto = make_optimizer(model, replace(ocfg, fused=ocfg.fused), dev).defaults
    chosen = "fused" if auto.get("fused") else "foreach" if auto.get("foreach") else "default"
    load = load_avg()
    times = time_steps(optimizers, args.warmup, args.repeats, args.device)
    params = sum(p.numel() for p in model.parameters())
    records = []
    for impl, ts in times.items():
        flags = {k: bool(optimizers[impl].defaults.get(k)) for k in ("fused", "foreach")}
        records.append({
            "arch": arch, "arch_kind": model.config.arch, "impl": impl, "label": LABELS[impl],
            "flags": flags, "preset_fused": ocfg.fused, "preset_resolves_to": chosen,
            "parameters": params, "tensors": sum(1 for _ in model.parameters()),
            "step_s_median": statistics.median(ts), "step_s_min": min(ts), "step_s": ts,
            "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads,
            "device": args.device, "overrides": list(args.overrides), "machine": machine,
            "load_before": load, "load_after": load_avg()})
    fastest = min(r["step_s_median"] for r in records)
    for r in records:
        r["relative_to_fastest"] = r["step_s_median"] / fastest
    return records


def markdown_table(records: list[dict]) -> str:
    lines = ["| model | parameters | AdamW | median step() s | min s | x fastest | preset uses |",
             "|" + " --- |" * 7]
    for r in records:
        lines.append(f"| {r['arch']} ({r['arch_kind']}) | {r['parameters']:,} | {r['label']} "
                     f"| {r['step_s_median']:.4f} | {r['step_s_min']:.4f} "
                     f"| {r['relative_to_fastest']:.2f}x | {LABELS[r['preset_resolves_to']]} |")
    return "\n".join(lines)


def run_benchmark(argv=None) -> list[dict]:
    """Time every (arch, impl); print the table; return (and with --json write) the records."""
    args = parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 3, 1
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if min(args.threads, args.repeats) < 1 or args.warmup < 0:
        raise UserError("--threads and --repeats must be >= 1, --warmup >= 0")
    for arch in args.arch:
        preset(arch, args.overrides)  # a bad --set fails here, before any timing
    torch.set_num_threads(args.threads)
    info = ensure_corpus(Path(args.corpus))
    machine = machine_info(args.device, args.threads)
    records = []
    for arch in args.arch:
        records += run_arch(arch, args, info, machine)
        print(f"{arch}: " + ", ".join(f"{r['label']} {r['step_s_median']:.4f} s"
                                      for r in records if r["arch"] == arch),
              file=sys.stderr, flush=True)
    print(markdown_table(records))
    print(f"\nmachine: {machine['cpu']}, {machine['cores']} cores, {args.threads} threads, "
          f"torch {machine['torch']}, {machine['date']}; medians of {args.repeats} steps")
    if args.json:
        from zhbert.io_utils import atomic_write_json

        atomic_write_json(args.json, records)
    return records


def main(argv=None) -> int:
    run_benchmark(argv)
    return 0


if __name__ == "__main__":
    run_cli(main)
