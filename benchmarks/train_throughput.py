"""Training throughput: this project's model + loop vs transformers' MLM class + a plain loop.

python benchmarks/train_throughput.py [--arch paper demo efficient] [--batch-kind pairs packed]
       [--dtype fp32 bf16 fp16] [--grad-accum N] [--compile] [--threads 2] [--repeats N]
       [--device cpu|cuda] [--set KEY=VALUE] [--json OUT]

Both sides run in one process on identical batches (same architecture, initial weights, batch,
masked positions, dtype and thread count), alternating after warm-up (the order flips every
repeat). Each preset is compared with the transformers class its export loads into
(``zhbert/bench/models.py``): ``model.arch=bert`` (paper, smoke) with ``BertForMaskedLM``,
``model.arch=modern`` (demo, efficient) with ``ModernBertForMaskedLM``; the record's
``arch_kind`` says which. One timed step is a full optimizer step over ``--grad-accum`` micro-batches (each side's loss
divided by it, as the loop does):

* ours: the preset's model from ``zhbert.models.build_model`` (unpadding for BERT, the sparse MLM
  head for both; the batch trimmed and laid out with ``zhbert.data.prepare_batch`` when it is
  built, as the loop's prefetch thread does) with the steps of ``zhbert.training.loop.train_step``:
  autocast forward (``attention_mask=None`` for packed batches, as the loop does), backward,
  ``clip_grad_norm_`` (after ``GradScaler.unscale_`` in fp16), AdamW from ``zhbert.training.optim`` (two weight-decay groups,
  implementation as the preset's ``optim.fused`` resolves), the warmup/decay lr.
* HF: the transformers model with ``attn_implementation="sdpa"`` on the untrimmed batch, with the
  loop a user would write: ``loss.backward(); opt.step(); opt.zero_grad()`` with
  ``torch.optim.AdamW`` defaults (and ``GradScaler`` in fp16). ModernBERT runs with ``sparse_prediction=True`` (its pretraining
  setting: head and decoder only at the labelled positions); ``--hf-dense-head`` times the
  exported config's default instead (every position, like ``BertForMaskedLM``).

Loss check: before timing, both models run an eval-mode (dropout off) fp32 forward on the first
(untrimmed) batch with its attention mask; ``loss_diff`` is the absolute difference of the two MLM
losses (must be <= 1e-4). Both average the cross-entropy over the labelled real tokens; the
band of a modern local layer (``|i - j| <= window // 2``) is the sliding window transformers builds
from ``local_attention``. Timing then uses the preset's real dropout (paper 0.1; the demo and
efficient presets train without dropout).

Model FLOPs per step (the same numerator for both sides; what the model needs for the real tokens,
not what an implementation spends on padding, on masked-out attention pairs or on predicting
unmasked positions): ``6 * N * T + 6 * (H^2 + H * V) * M + 12 * hidden * P``, N = encoder parameters
(without the token/position/type tables and the MLM head; GeGLU's doubled input projection counts
as its parameters do, and there are no biases in modern), T = real tokens, M = masked positions
(the MLM head's dense H x H and decoder H x V run only there), P = (query, key) pairs summed over
the layers: ``n_i^2`` per sequence of real length n_i in a global layer, and in a modern local
layer with ``m = min(window // 2, n_i - 1)`` the band's ``n_i (2m + 1) - m (m + 1)`` (QK^T and PV,
2 FLOPs per multiply-add, x3 for forward + backward). MFU is that over the step time and the peak
of a square matmul measured in the same run, dtype and threads. ``data_wait_frac`` = time to build
one batch with ``zhbert.data.BatchBuilder`` / (that + our step time): the share of a step spent
waiting if batches were built inline (prefetch hides it).

The optimizer step alone (fused / foreach / for-loop AdamW) is timed by
``benchmarks/optimizer_step.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from zhbert.bench.env import (  # noqa: E402
    bf16_supported,
    ensure_corpus,
    load_avg,
    machine_info,
    matmul_peak,
    sync,
)
from zhbert.bench.models import (  # noqa: E402
    PAPER_SCALE,
    build_pair,
    encoder_params,
    hf_loss,
    model_config,
    model_flops,
    preset,
)
from zhbert.errors import UserError, run_cli  # noqa: E402

ARCHS = ("paper", "demo", "efficient", "smoke")
KINDS, DTYPES = ("pairs", "packed"), ("fp32", "bf16", "fp16")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
LOSS_TOL = 1e-4


@dataclass(frozen=True)
class Case:
    arch: str
    kind: str
    dtype: str
    compile: bool = False

    @property
    def name(self) -> str:
        return f"{self.arch}/{self.kind}/{self.dtype}" + ("/compile" if self.compile else "")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default="data/demo",
                   help="prepared corpus dir (the demo corpus is prepared there if missing)")
    p.add_argument("--arch", nargs="+", choices=ARCHS, default=["paper", "demo"],
                   help="presets whose model section is timed (efficient: the paper-scale "
                        "modern model, slow on 2 cores, so not in the default set)")
    p.add_argument("--batch-kind", nargs="+", choices=KINDS, default=list(KINDS),
                   help="pairs: [CLS] A [SEP] B [SEP] padded to seq-len; packed: no padding")
    p.add_argument("--dtype", nargs="+", choices=DTYPES, default=None,
                   help="fp32, bf16 and/or fp16 autocast (fp16 with GradScaler on both sides); "
                        "default: fp32, and bf16 where the device computes it natively")
    p.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per timed optimizer step (the paper preset: 4 x 32)")
    p.add_argument("--cases", nargs="+", default=None,
                   help="explicit cases ARCH/KIND/DTYPE[/compile] (overrides the filters)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied to every case's preset, as main_train.py's "
                        "--set (e.g. model.local_window=32); repeatable; kept in the records")
    p.add_argument("--compile", action="store_true",
                   help="also run every case with torch.compile on both sides (own rows)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=None,
                   help="sequences per batch (default: the preset's; paper/efficient on CPU: 8)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="tokens per sequence (default: the preset's data.seq_len: paper and "
                        "efficient 128, demo 64)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed steps per side (default: 5 paper/efficient, 8 others; --quick: 2)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps per side (default 1; 3 for compiled rows)")
    p.add_argument("--ours-optim", choices=("preset", "fused", "foreach", "default"),
                   default="preset", help="AdamW implementation of our loop (preset: as trained)")
    p.add_argument("--hf-dense-head", action="store_true",
                   help="ModernBERT side: head and decoder at every position (the exported "
                        "config's sparse_prediction=false) instead of only the labelled ones")
    p.add_argument("--quick", action="store_true", help="2 repeats, 1 warm-up")
    p.add_argument("--json", default=None, help="write the records (one per case) to this file")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- setup


def make_batches(info, data_cfg, kind: str, batch_size: int, seq_len: int, n: int,
                 multiple: int = 1):
    """``n`` (ours, HF) batch pairs from zhbert.data.BatchBuilder; median seconds to build one.

    Ours is the batch after ``zhbert.data.prepare_batch`` (trimmed to its used columns, with its
    layout), built with the batch as the loop's prefetch thread does; HF gets it untrimmed.
    """
    from zhbert.corpus import load_split
    from zhbert.data import BatchBuilder, prepare_batch

    dcfg = replace(data_cfg, format=kind, seq_len=seq_len, batch_size=batch_size,
                   whole_word_mask=False)
    builder = BatchBuilder(load_split(info.path, "train"), info, dcfg, seed=0)
    builder.build(10_000)  # first-call costs (permutation of the epoch) are not per batch
    batches, times = [], []
    for g in range(n):
        t = time.perf_counter()
        b = builder.build(g)
        mine = prepare_batch(b, with_cls=False, packed=kind == "packed", multiple=multiple)
        times.append(time.perf_counter() - t)
        batches.append((mine, b))
    return batches, statistics.median(times)


# ----------------------------------------------------------------------------- the two sides


class Side:
    """A model, its optimizer and its ``step(batch)``; ``fwd`` may be the compiled model."""

    def __init__(self, name, model, fwd, step_fn, optim_desc):
        self.name, self.model, self.fwd, self.step_fn = name, model, fwd, step_fn
        self.optim_desc, self.times, self.tps = optim_desc, [], []

    def step(self, batch) -> None:
        self.step_fn(self, batch)


def build_sides(case: Case, args, info, cfg, ocfg):
    """Ours and HF with identical initial weights (``zhbert.bench.models.build_pair``)."""
    from zhbert.lr_schedule import lr_factor
    from zhbert.training.optim import make_optimizer
    from zhbert.training.schedule import set_lr

    dev = torch.device(args.device)
    torch.manual_seed(0)
    ours, hf, hf_info = build_pair(cfg, info.path, hf_sparse=not args.hf_dense_head)
    ours.to(dev)
    hf.to(dev)
    if args.ours_optim != "preset":
        ocfg = replace(ocfg, fused=args.ours_optim)
    opt = make_optimizer(ours, ocfg, dev)
    updates = [0]
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=ocfg.lr)
    dtype = AMP_DTYPES.get(case.dtype)

    def amp():
        return (torch.autocast(device_type=dev.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())

    scalers = [torch.amp.GradScaler(dev.type) if case.dtype == "fp16" else None for _ in "ab"]
    packed = case.kind == "packed"

    def backward(loss, scaler):
        (scaler.scale(loss) if scaler else loss).backward()

    def update(optimizer, scaler):
        scaler.step(optimizer) if scaler else optimizer.step()
        if scaler:
            scaler.update()

    def ours_step(side, micro):  # mirrors zhbert.training.loop.train_step
        for b in micro:
            with amp():
                out = side.fwd(b.input_ids, attention_mask=None if packed else b.attention_mask,
                               token_type_ids=b.token_type_ids, mlm_labels=b.mlm_labels,
                               layout=b.layout)
            backward(out.loss / len(micro), scalers[0])
        if scalers[0]:
            scalers[0].unscale_(opt)
        torch.nn.utils.clip_grad_norm_(ours.parameters(), ocfg.clip_norm)
        set_lr(opt, ocfg.lr * lr_factor(updates[0] + 1, ocfg.warmup_steps, 10**6, ocfg.schedule))
        update(opt, scalers[0])
        opt.zero_grad(set_to_none=True)
        updates[0] += 1

    def hf_step(side, micro):  # the plain loop
        for b in micro:
            with amp():
                loss = hf_loss(side.fwd, b)
            backward(loss / len(micro), scalers[1])
        update(hf_opt, scalers[1])
        hf_opt.zero_grad()

    impl = {k: v for k, v in opt.defaults.items() if k in ("fused", "foreach") and v}
    ours_desc = f"AdamW({', '.join(impl) or 'for-loop'}; 2 groups), clip, warmup/decay lr"
    hf_impl = {k: v for k, v in hf_opt.defaults.items() if k in ("fused", "foreach") and v}
    hf_desc = f"AdamW() defaults ({', '.join(hf_impl) or 'for-loop'})"
    return (Side("ours", ours, ours, ours_step, ours_desc),
            Side("hf", hf, hf, hf_step, hf_desc), hf_info)


def loss_check(ours, hf, batch, device: str) -> tuple[float, float]:
    """Eval-mode (dropout off) fp32 MLM losses of both models on the untrimmed ``batch``."""
    b = batch.to(torch.device(device))
    ours.eval()
    hf.eval()
    with torch.no_grad():
        a = ours(b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.token_type_ids,
                 mlm_labels=b.mlm_labels).loss.item()
        h = hf_loss(hf, b).item()
    ours.train()
    hf.train()
    return a, h


# ----------------------------------------------------------------------------- one case


def case_settings(case: Case, args) -> tuple[int, int, int, int]:
    """Batch size, sequence length, timed repeats and warm-up steps of ``case``."""
    data = preset(case.arch, args.overrides).data
    big = case.arch in PAPER_SCALE
    bs = args.batch_size or (8 if args.device == "cpu" and big else data.batch_size)
    repeats = args.repeats or (2 if args.quick else (5 if big else 8))
    # compiled rows warm up longer: unpadding gives new shapes, which recompile at first sight
    warmup = (3 if case.compile else 1) if args.warmup is None else args.warmup
    return bs, args.seq_len or data.seq_len, repeats, warmup


def run_case(case: Case, args, info, peaks: dict, machine: dict) -> dict:
    """Warm up, then alternate timed steps of both sides; return the case's record."""
    bs, seq_len, repeats, warmup = case_settings(case, args)
    tcfg = preset(case.arch, args.overrides)
    cfg = model_config(case.arch, info, seq_len, args.overrides)
    multiple = 8 if args.device == "cuda" or case.compile else 1  # as the loop's batch_preparer
    accum = args.grad_accum
    batches, build_s = make_batches(info, tcfg.data, case.kind, bs, seq_len,
                                    (warmup + repeats) * accum, multiple)
    ours, hf, hf_info = build_sides(case, args, info, cfg, tcfg.optim)
    loss_ours, loss_hf = loss_check(ours.model, hf.model, batches[0][1], args.device)
    rec = {"case": case.name, "arch": case.arch, "arch_kind": cfg.arch, "batch_kind": case.kind,
           "dtype": case.dtype, "compile": case.compile, "device": args.device,
           "batch_size": bs, "seq_len": seq_len, "grad_accum": accum, "threads": args.threads,
           "repeats": repeats,
           "warmup": warmup, "overrides": list(args.overrides), "dropout": cfg.dropout,
           "attention_dropout": cfg.attention_dropout, "local_window": cfg.local_window,
           "loss_ours": loss_ours, "loss_hf": loss_hf, "loss_diff": abs(loss_ours - loss_hf),
           "loss_check": "eval-mode (dropout off) fp32 forward on the first batch",
           "optimizer_ours": ours.optim_desc, "optimizer_hf": hf.optim_desc, **hf_info,
           "machine": machine, "load_before": load_avg()}
    if case.compile:
        try:
            ours.fwd, hf.fwd = torch.compile(ours.model), torch.compile(hf.model)
        except Exception as exc:  # compile is optional: report and skip the row
            return {**rec, "skipped": f"torch.compile failed: {type(exc).__name__}: {exc}"}
    dev = torch.device(args.device)
    batches = [(a.to(dev), b.to(dev)) for a, b in batches]
    steps = [batches[r * accum:(r + 1) * accum] for r in range(warmup + repeats)]
    for r, micro in enumerate(steps):
        for side in (ours, hf) if r % 2 == 0 else (hf, ours):
            b = [pair[0] if side is ours else pair[1] for pair in micro]
            sync(args.device)
            t = time.perf_counter()
            try:
                side.step(b)
            except Exception as exc:
                if not case.compile:
                    raise
                return {**rec, "skipped": f"compiled step failed: {type(exc).__name__}: {exc}"}
            sync(args.device)
            if r >= warmup:
                side.times.append(time.perf_counter() - t)
                side.tps.append(sum(x.n_tokens for x in b) / side.times[-1])
    timed = [[hf_b for _, hf_b in micro] for micro in steps[warmup:]]
    return finish_record(rec, cfg, ours, hf, timed, peaks[case.dtype], build_s)


def step_flops(cfg, n_encoder: int, micro) -> float:
    """Model FLOPs of one optimizer step: the sum over its (untrimmed) micro-batches."""
    return sum(model_flops(cfg, n_encoder, b.attention_mask.sum(1).cpu(),
                           int((b.mlm_labels != -100).sum())) for b in micro)


def finish_record(rec, cfg, ours: Side, hf: Side, timed, peak, build_s) -> dict:
    """Medians, ratio, MFU and data wait from the timed steps (``timed``: for each step, its
    untrimmed micro-batches)."""
    n_encoder = encoder_params(ours.model)
    flops = [step_flops(cfg, n_encoder, micro) for micro in timed]
    for side in (ours, hf):
        med = statistics.median(side.times)
        rec[f"{side.name}_step_s_median"] = med
        rec[f"{side.name}_step_s_min"] = min(side.times)
        rec[f"{side.name}_steps_per_s"] = 1.0 / med
        rec[f"{side.name}_tokens_per_s"] = statistics.median(side.tps)
        rec[f"mfu_{side.name}"] = statistics.median(
            f / t / peak for f, t in zip(flops, side.times, strict=True))
    rec["ratio"] = rec["ours_tokens_per_s"] / rec["hf_tokens_per_s"]
    rec["ratio_paired_median"] = statistics.median(
        h / o for o, h in zip(ours.times, hf.times, strict=True))
    rec["real_tokens_per_step"] = statistics.mean(sum(b.n_tokens for b in m) for m in timed)
    rec["padded_tokens_per_step"] = sum(b.input_ids.numel() for b in timed[0])
    rec["model_flops_per_step"] = statistics.mean(flops)
    rec["encoder_params"] = n_encoder
    rec["peak_flops"] = peak
    rec["data_build_s"] = build_s
    micro_s = rec["ours_step_s_median"] / len(timed[0])  # one batch is built per micro-batch
    rec["data_wait_frac"] = build_s / (build_s + micro_s)
    rec["load_after"] = load_avg()
    return rec


# ----------------------------------------------------------------------------- report


def select_cases(args) -> list[Case]:
    if args.cases:
        out = []
        for text in args.cases:
            parts = text.split("/")
            if len(parts) not in (3, 4) or parts[0] not in ARCHS or parts[1] not in KINDS \
                    or parts[2] not in DTYPES or (len(parts) == 4 and parts[3] != "compile"):
                raise UserError(f"--cases {text!r}: expected ARCH/KIND/DTYPE[/compile]")
            out.append(Case(parts[0], parts[1], parts[2], len(parts) == 4))
        return out
    dtypes = args.dtype
    if dtypes is None:
        dtypes = ["fp32", "bf16"] if bf16_supported(args.device) else ["fp32"]
        if "bf16" not in dtypes:
            print(f"bf16 rows left out: {args.device} does not compute bf16 natively here (it "
                  "would be emulated, far slower than fp32); ask for them with --dtype bf16",
                  file=sys.stderr)
    base = [Case(a, k, d) for a in args.arch for k in args.batch_kind for d in dtypes]
    return base + ([replace(c, compile=True) for c in base] if args.compile else [])


def accum_prefix(record: dict) -> str:
    """``"4x"`` for a record of 4 accumulated micro-batches, ``""`` for one.

    >>> accum_prefix({"grad_accum": 4}), accum_prefix({})
    ('4x', '')
    """
    n = record.get("grad_accum", 1)
    return f"{n}x" if n > 1 else ""


def markdown_table(records: list[dict]) -> str:
    head = ("| case | model | batch | real tok/step | ours tok/s | HF tok/s | ratio | MFU ours "
            "| MFU HF | loss diff | data wait | ours steps/s | HF steps/s |")
    lines = [head, "|" + " --- |" * 13]
    for r in records:
        if "skipped" in r:
            lines.append(f"| {r['case']} | {r['arch_kind']} | {r['batch_size']} "
                         f"| skipped: {r['skipped'][:80]} |" + " |" * 9)
            continue
        lines.append(
            f"| {r['case']} | {r['arch_kind']} | {accum_prefix(r)}{r['batch_size']}x{r['seq_len']} "
            f"| {r['real_tokens_per_step']:.0f} "
            f"| {r['ours_tokens_per_s']:.0f} | {r['hf_tokens_per_s']:.0f} | {r['ratio']:.2f}x "
            f"| {r['mfu_ours']:.1%} | {r['mfu_hf']:.1%} | {r['loss_diff']:.1e} "
            f"| {r['data_wait_frac']:.1%} | {r['ours_steps_per_s']:.3f} "
            f"| {r['hf_steps_per_s']:.3f} |")
    return "\n".join(lines)


def check_args(args) -> None:
    """UserError for settings that cannot run (device, sizes, bad --set overrides)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    sizes = [args.threads, args.grad_accum] + [
        v for v in (args.seq_len, args.batch_size, args.repeats) if v is not None]
    if min(sizes) < 1 or (args.warmup or 0) < 0:
        raise UserError("--threads, --grad-accum, --seq-len, --batch-size and --repeats must be "
                        ">= 1, --warmup >= 0")
    for arch in set(args.arch) | {c.split("/")[0] for c in args.cases or [] if "/" in c}:
        if arch in ARCHS:
            preset(arch, args.overrides)  # a bad --set fails here, before any timing


def run_benchmark(argv=None) -> list[dict]:
    """Run the selected cases; print the table; return (and with --json write) the records."""
    args = parse_args(argv)
    check_args(args)
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as the training loop configures it
    cases = select_cases(args)
    info = ensure_corpus(Path(args.corpus))
    machine = machine_info(args.device, args.threads)
    peaks = {d: matmul_peak(d, args.device) for d in sorted({c.dtype for c in cases})}
    records = []
    for case in cases:
        records.append(run_case(case, args, info, peaks, machine))
        r = records[-1]
        if args.json:  # after every case: a run cut short keeps the rows it finished
            from zhbert.io_utils import atomic_write_json

            atomic_write_json(args.json, records)
        print(f"{case.name}: " + (f"skipped ({r['skipped']})" if "skipped" in r else
              f"ours {r['ours_tokens_per_s']:.0f} tok/s, HF {r['hf_tokens_per_s']:.0f} tok/s, "
              f"ratio {r['ratio']:.2f}, loss diff {r['loss_diff']:.1e}, "
              f"load {r['load_before']:.1f}->{r['load_after']:.1f}"), file=sys.stderr, flush=True)
    print(markdown_table(records))
    if records:
        r = records[0]
        print(f"\nmachine: {machine['cpu']}, {machine['cores']} cores, {args.threads} threads, "
              f"torch {machine['torch']}, transformers {machine['transformers']}, "
              f"{machine['date']}; matmul peak "
              + ", ".join(f"{d} {p / 1e9:.0f} GFLOP/s" for d, p in peaks.items())
              + f"\noptimizer: ours {r['optimizer_ours']}; HF {r['optimizer_hf']}")
    bad = [r["case"] for r in records if r.get("loss_diff", 0.0) > LOSS_TOL]
    if bad:
        raise UserError(f"loss check failed (> {LOSS_TOL}) for: {', '.join(bad)}")
    return records


def main(argv=None) -> int:
    run_benchmark(argv)
    return 0


if __name__ == "__main__":
    run_cli(main)
