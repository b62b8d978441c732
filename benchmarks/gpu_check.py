"""The first thing to run on a GPU machine: does the training loop run well here?

python benchmarks/gpu_check.py --json gpu_check.json                 # paper preset, demo corpus
python benchmarks/gpu_check.py --preset smoke --steps 5 --json out.json   # seconds, on a CPU

It reports, as JSON:

* ``device``: name, compute capability, memory, the precision ``run.precision=auto`` picks there
  and why (``zhbert.training.precision.choose_precision``: on a CPU, native bf16 and a probe at
  the model's matmul shape);
* ``cases``: for each precision (bf16 where the GPU has it natively, fp16, and fp32) and, on CUDA,
  compiled bf16/fp16: ``--steps`` optimizer steps of the preset with the real loop
  (``zhbert.training.loop.train_step``) after ``--warmup`` steps; tokens/s, MFU (model FLOPs, as
  in ``benchmarks/train_throughput.py``, over a square matmul's peak measured in the same run and
  precision), peak GPU memory, host-device synchronisations per step
  (``torch.cuda.set_sync_debug_mode("warn")``), skipped steps, first and last loss;
* ``graph_breaks``: graphs and breaks of the model's training forward under dynamo (goal: 1, 0);
* ``memory_estimate``: weights + gradients + AdamW state + the tensors one micro-batch keeps
  for backward (measured with saved-tensor hooks on the CPU on a full ``batch_size x seq_len``
  batch), at the auto precision and at fp32; ``fused_attention`` is the same without attention
  dropout, which on the CPU keeps the ``L x L`` probabilities and dropout mask (a GPU's fused
  SDPA kernel keeps neither), so it is the closer estimate of a GPU;
* ``ddp``: a 2-process NCCL run of ``main_train.py`` when two GPUs exist.

Parts that need CUDA are skipped on the CPU with the reason in the report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from zhbert import history_schema as H  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.layout import IGNORE_INDEX  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", required=True, help="write the report to this file")
    p.add_argument("--preset", default="paper", help="training preset to measure")
    p.add_argument("--corpus", default="data/demo",
                   help="prepared corpus (the demo corpus is prepared there if missing)")
    p.add_argument("--steps", type=int, default=300, help="timed optimizer steps per case")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (compile, cache)")
    p.add_argument("--sync-steps", type=int, default=3,
                   help="steps run under set_sync_debug_mode('warn') to count synchronisations")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled cases")
    p.add_argument("--compile-only", action="store_true",
                   help="only the compiled cases (a separate report: compile warm-up is long)")
    p.add_argument("--precisions", nargs="+", choices=("bf16", "fp16", "fp32"), default=None,
                   help="precisions to run (default: bf16 where native, fp16, fp32)")
    p.add_argument("--skip-cases", action="store_true",
                   help="no training cases: only graph breaks, memory estimate and DDP")
    p.add_argument("--no-ddp", action="store_true", help="skip the 2-process NCCL run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every case (repeatable)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- device


def device_report(device: torch.device, preset: str = "paper") -> dict:
    """What the device is and which precision ``auto`` picks on it for ``preset``, and why."""
    from zhbert.config import build_config
    from zhbert.training.setup import resolve_precision

    choice = resolve_precision(build_config(preset, overrides=["run.precision=auto"]), device)
    rep = {"type": device.type, "torch": torch.__version__, "precision_auto": choice.precision,
           "precision_reason": choice.reason}
    if choice.bf16_speedup is not None:
        rep["bf16_speedup"] = round(choice.bf16_speedup, 3)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        rep.update(name=props.name, capability=list(torch.cuda.get_device_capability(device)),
                   memory_bytes=props.total_memory, count=torch.cuda.device_count(),
                   cuda=torch.version.cuda)
    else:
        from zhbert.training.precision import cpu_native_bf16

        rep.update(name="cpu", threads=torch.get_num_threads(), native_bf16=cpu_native_bf16())
    return rep


def case_list(device: torch.device, auto: str, compile_too: bool,
              native: bool | None = None) -> list[tuple[str, bool]]:
    """(precision, compiled) pairs to run: bf16 only where it is native (``native``: the CPU's
    answer, default :func:`zhbert.training.precision.cpu_native_bf16`)."""
    if device.type == "cuda":
        has_bf16 = auto == "bf16"
    else:
        from zhbert.training.precision import cpu_native_bf16

        has_bf16 = cpu_native_bf16() if native is None else native
    precisions = ["bf16", "fp16", "fp32"] if has_bf16 else ["fp16", "fp32"]
    cases = [(p, False) for p in precisions]
    if compile_too:
        cases += [(p, True) for p in precisions if p != "fp32"]
    return cases


# ----------------------------------------------------------------------------- one case


def count_syncs(fn, n: int) -> int:
    """Host-device synchronisations CUDA reports while ``fn`` runs ``n`` times."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(n):
                fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def consumed_work(setup, first: int) -> tuple[torch.Tensor, int]:
    """Real lengths and the number of masked positions of the micro-batches consumed since
    ``first`` (rebuilt: every batch is a pure function of its index)."""
    batches = [setup.stream.builder.build(g) for g in range(first, setup.stream.consumed)]
    lengths = torch.cat([b.attention_mask.sum(1) for b in batches])
    return lengths, int(sum(int((b.mlm_labels != IGNORE_INDEX).sum()) for b in batches))


def run_case(cfg, args, device: torch.device, peak: float) -> dict:
    """Warm up, time ``--steps`` steps of the real loop, count syncs; one record."""
    from zhbert.bench.models import encoder_params, model_flops
    from zhbert.training.build import build
    from zhbert.training.loop import train_step
    from zhbert.training.state import Interval

    cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        s, p = build(cfg, Path(tmp) / "run", resume=False, overwrite=True,
                     echo=lambda *_: None)
        try:
            for _ in range(args.warmup):
                train_step(s, p)
            p.interval = Interval(s.device)
            first = s.stream.consumed
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            t = time.perf_counter()
            for _ in range(args.steps):
                train_step(s, p)
            if cuda:
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t
            acc = {k: float(v) for k, v in p.interval.sums.items()}
            lengths, n_masked = consumed_work(s, first)
            rec = {"steps": args.steps, "seconds": round(seconds, 3),
                   "tokens_per_s": round(acc["tokens"] / seconds, 1),
                   "loss": acc["loss_sum"] / max(acc["n_micro"], 1.0),
                   "skipped_steps": int(acc["skipped"])}
            flops = model_flops(s.model.config, encoder_params(s.model), lengths, n_masked)
            mfu = flops / seconds / peak
            rec["mfu"] = round(mfu, 4) if mfu <= 1 else None
            if mfu > 1:  # seen for fp16 on the CPU, whose square matmul takes a slower path
                rec["mfu_note"] = (f"{mfu:.0%} of the measured {cfg.run.precision} matmul "
                                   "peak: that peak is no bound for the model's kernels on this "
                                   "device, so no MFU is reported")
            rec["peak_flops"] = peak
            if cuda:
                rec["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
                n = args.sync_steps
                rec["syncs_per_step"] = count_syncs(lambda: train_step(s, p), n) / max(n, 1)
            else:
                rec["peak_memory_bytes"] = rec["syncs_per_step"] = None
                rec["not_measured"] = "peak memory and sync count need CUDA"
        finally:
            s.close()
    return rec


# ----------------------------------------------------------------------------- static checks


def _tiny_batch(cfg, seed: int = 0):
    """A full (no padding) ``batch_size x seq_len`` batch with 15 % labels: the worst case."""
    g = torch.Generator().manual_seed(seed)
    B, L = cfg.data.batch_size, cfg.data.seq_len
    ids = torch.randint(5, cfg.model.vocab_size, (B, L), generator=g)
    labels = torch.where(torch.rand(B, L, generator=g) < 0.15, ids, -100)
    mask = torch.ones(B, L, dtype=torch.long)
    nsp = torch.randint(0, 2, (B,), generator=g) if cfg.model.use_nsp else None
    return ids, mask, labels, nsp


def graph_breaks(cfg) -> dict:
    """Graphs and graph breaks of the training forward (with its host-built layout)."""
    from zhbert.layout import batch_layout
    from zhbert.models import build_model

    model = build_model(cfg.model).train()
    ids, mask, labels, nsp = _tiny_batch(cfg)
    mask[1:, cfg.data.seq_len // 2:] = 0  # padding, as pairs batches have
    lay = batch_layout(ids, mask, labels, with_cls=cfg.model.use_nsp, multiple=8)
    torch._dynamo.reset()
    ex = torch._dynamo.explain(model)(ids, attention_mask=mask, token_type_ids=None,
                                      mlm_labels=labels, nsp_labels=nsp, layout=lay)
    torch._dynamo.reset()
    return {"graphs": ex.graph_count, "breaks": ex.graph_break_count,
            "reasons": [r.reason.splitlines()[0] for r in ex.break_reasons]}


def memory_estimate(cfg, precision: str) -> dict:
    """Bytes of weights, gradients, AdamW state and one micro-batch's saved activations."""
    from zhbert.layout import batch_layout
    from zhbert.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in param_ptrs:
            seen[s.data_ptr()] = s.nbytes()
        return t

    ids, mask, labels, nsp = _tiny_batch(cfg)
    lay = batch_layout(ids, mask, labels, with_cls=cfg.model.use_nsp, multiple=8)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    amp = torch.autocast("cpu", dtype=dtype, enabled=dtype is not None)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), amp:
        out = model(ids, attention_mask=mask, mlm_labels=labels, nsp_labels=nsp, layout=lay)
    del out
    acts = sum(seen.values())
    total = 4 * params + acts  # weights + grads + 2 AdamW moments (fp32) + activations
    return {"precision": precision, "batch": [cfg.data.batch_size, cfg.data.seq_len],
            "weights_bytes": params, "gradients_bytes": params, "adamw_bytes": 2 * params,
            "activations_bytes": acts, "total_bytes": total,
            "total_gib": round(total / 2**30, 3),
            "not_counted": "CUDA context, cuBLAS/cuDNN workspaces, allocator fragmentation"}


def ddp_check(args, device: torch.device) -> dict:
    """A short 2-process NCCL run of main_train.py (two GPUs needed)."""
    if args.no_ddp:
        return {"skipped": "--no-ddp"}
    if device.type != "cuda" or torch.cuda.device_count() < 2:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return {"skipped": f"needs 2 CUDA GPUs; found {n}"}
    import json

    steps = max(args.steps // 4, 10)
    with tempfile.TemporaryDirectory(prefix="gpu_check_ddp_") as tmp:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(ROOT / "main_train.py"), "--preset", args.preset,
               "--run-dir", str(Path(tmp) / "run"), "--set", f"data.corpus_dir={args.corpus}",
               "--set", f"run.max_steps={steps}", "--set", f"run.log_interval={steps}",
               "--set", "run.export_final=false", "--set", "run.progress=false",
               *[x for o in args.overrides for x in ("--set", o)]]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        rec = {"world_size": 2, "steps": steps, "returncode": proc.returncode,
               "wall_s": round(time.perf_counter() - t, 1)}
        if proc.returncode:
            return {**rec, "error": proc.stderr.strip().splitlines()[-1:]}
        h = json.loads((Path(tmp) / "run" / "training_history.json").read_text())
    return {**rec, "tokens_per_s": h[H.TOKENS_PER_S][-1], "loss": h[H.LOSS][-1]}


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    if min(args.steps, args.warmup + 1, args.sync_steps + 1) < 1:
        raise UserError("--steps must be >= 1, --warmup and --sync-steps >= 0")
    from zhbert.bench.env import ensure_corpus, matmul_peak
    from zhbert.config import build_config
    from zhbert.io_utils import atomic_write_json

    ensure_corpus(Path(args.corpus))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"device": device_report(device, args.preset), "preset": args.preset, "skipped": []}
    cuda = device.type == "cuda"
    compile_too = cuda and not args.no_compile
    if not cuda:
        report["skipped"].append("compiled cases: torch.compile warm-up takes minutes on the "
                                 "CPU and this check is about the GPU")
    n = args.warmup + args.steps + args.sync_steps + 1  # the cases call train_step only
    base = [f"data.corpus_dir={args.corpus}", "run.progress=false", "run.export_final=false",
            *[f"run.{k}={n}" for k in ("max_steps", "log_interval", "eval_interval",
                                        "save_interval")], *args.overrides]
    cases = []
    todo = [] if args.skip_cases else case_list(device, report["device"]["precision_auto"],
                                                compile_too)
    if not cuda and not any(p == "bf16" for p, _ in todo) and not args.skip_cases:
        report["skipped"].append("bf16 case: this CPU has no native bf16 (emulated bf16 is far "
                                 "slower than fp32)")
    if args.precisions:
        todo = [(p, c) for p, c in todo if p in args.precisions]
    if args.compile_only:
        todo = [(p, c) for p, c in todo if c]
    if args.skip_cases:
        report["skipped"].append("training cases: --skip-cases")
    for precision, compiled in todo:
        cfg = build_config(args.preset, overrides=[*base, f"run.precision={precision}",
                                                   f"run.compile={str(compiled).lower()}"])
        peak = matmul_peak(precision, device.type, None if cuda else 512)
        rec = {"precision": precision, "compile": compiled}
        try:
            rec.update(run_case(cfg, args, device, peak))
        except (RuntimeError, UserError) as exc:  # report the failure, go on with the rest
            rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        cases.append(rec)
        print(f"{precision}{' compiled' if compiled else ''}: "
              + (rec.get("error") or f"{rec['tokens_per_s']:.0f} tok/s, MFU "
                 + (f"{rec['mfu']:.1%}" if rec["mfu"] is not None else "n/a (see mfu_note)")),
              file=sys.stderr, flush=True)
    report["cases"] = cases
    cfg = build_config(args.preset, overrides=base)
    report["graph_breaks"] = graph_breaks(cfg)
    auto = report["device"]["precision_auto"]
    fused = build_config(args.preset, overrides=[*base, "model.attention_dropout=0"])
    report["memory_estimate"] = {"cpu_kernels": memory_estimate(cfg, auto),
                                 "fused_attention": memory_estimate(fused, auto),
                                 "fp32_fused_attention": memory_estimate(fused, "fp32")}
    report["ddp"] = ddp_check(args, device)
    atomic_write_json(args.json, report)
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
