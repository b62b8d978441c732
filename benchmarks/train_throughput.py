"""Training throughput: this project's model + loop vs transformers' BertForMaskedLM + a plain loop.

python benchmarks/train_throughput.py [--arch paper demo] [--batch-kind pairs packed]
       [--dtype fp32 bf16] [--compile] [--threads 2] [--repeats N] [--json OUT]

Both sides run in one process on identical batches (same architecture, initial weights, batch,
masked positions, dtype and thread count), alternating after warm-up (the order flips every
repeat). One timed step is a full optimizer step:

* ours: ``BertForPretraining`` (unpadding, sparse MLM head; the batch layout built with the
  batch, as the prefetch thread does) with the steps of
  ``zhbert.training.loop.train_step``: autocast forward (``attention_mask=None`` for packed batches,
  as the loop does), backward, ``clip_grad_norm_``, AdamW from ``zhbert.training.optim`` (two
  weight-decay groups, implementation as the preset's ``optim.fused`` resolves), LambdaLR.
* HF: ``BertForMaskedLM(attn_implementation="sdpa")`` with the loop a user would write:
  ``loss.backward(); opt.step(); opt.zero_grad()`` with ``torch.optim.AdamW`` defaults.

Loss check: before timing, both models run an eval-mode (dropout off) fp32 forward on the first
batch; ``loss_diff`` is the absolute difference of the two MLM losses (must be <= 1e-4). Timing then
uses the architecture's real dropout (paper 0.1; the demo preset trains without dropout).

Model FLOPs per step (the same numerator for both sides; what the model needs for the real tokens,
not what an implementation spends on padding or on predicting unmasked positions):
``6 * N * T + 6 * (H^2 + H * V) * M + 12 * layers * hidden * sum(n_i^2)``, N = encoder parameters
(without the word/position/type embedding tables and the MLM head), T = real tokens, M = masked
positions (the MLM head's dense H x H and decoder H x V run only there), n_i = real length of
sequence i (QK^T and PV, 2 FLOPs per multiply-add, x3 for forward + backward). MFU is
that over the step time and the peak of a square matmul measured in the same run, dtype and
threads. ``data_wait_frac`` = time to build one batch with ``zhbert.data.BatchBuilder`` / (that +
our step time): the share of a step spent waiting if batches were built inline (prefetch hides it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from zhbert.errors import UserError, run_cli  # noqa: E402

ARCHS, KINDS, DTYPES = ("paper", "demo", "smoke"), ("pairs", "packed"), ("fp32", "bf16")
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
                   help="architectures (presets' model sections)")
    p.add_argument("--batch-kind", nargs="+", choices=KINDS, default=list(KINDS),
                   help="pairs: [CLS] A [SEP] B [SEP] padded to seq-len; packed: no padding")
    p.add_argument("--dtype", nargs="+", choices=DTYPES, default=None,
                   help="fp32 and/or bf16 autocast (default: both where bf16 is supported)")
    p.add_argument("--cases", nargs="+", default=None,
                   help="explicit cases ARCH/KIND/DTYPE[/compile] (overrides the filters)")
    p.add_argument("--compile", action="store_true",
                   help="also run every case with torch.compile on both sides (own rows)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=None,
                   help="sequences per batch (default: the preset's; paper on CPU: 8)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed steps per side (default: 5 paper, 8 demo; --quick: 2)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps per side (default 1; 3 for compiled rows)")
    p.add_argument("--ours-optim", choices=("preset", "fused", "foreach", "default"),
                   default="preset", help="AdamW implementation of our loop (preset: as trained)")
    p.add_argument("--quick", action="store_true", help="2 repeats, 1 warm-up")
    p.add_argument("--json", default=None, help="write the records (one per case) to this file")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- setup


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
    return info


def load_avg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def bf16_supported(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    with contextlib.suppress(Exception):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


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


def preset(arch: str):
    """The preset's TrainConfig (model, data, optim sections)."""
    from zhbert.config import get_preset

    return get_preset(arch)


def model_config(arch: str, info, seq_len: int):
    """The preset's model, MLM only (compared with BertForMaskedLM).

    The vocabulary is the larger of the preset's and the corpus's: the paper architecture keeps
    the original's 10,054 rows (the demo corpus's ids all fall inside it), other presets take
    the corpus vocabulary, as training does.
    """
    base = preset(arch).model
    vocab = max(base.vocab_size, info.vocab_size) if arch == "paper" else info.vocab_size
    cfg = replace(base, use_nsp=False, vocab_size=vocab, pad_token_id=info.pad_id)
    if cfg.max_position_embeddings < seq_len:
        raise UserError(f"--seq-len {seq_len} > max_position_embeddings of {arch} "
                        f"({cfg.max_position_embeddings})")
    return cfg


def make_batches(info, arch: str, kind: str, batch_size: int, seq_len: int, n: int):
    """``n`` batches from zhbert.data.BatchBuilder and the median seconds to build one.

    Each batch carries its layout (``zhbert.layout``), built with the batch as the loop's
    prefetch thread does; the tensors keep their full length (HF gets them as they are).
    """
    from zhbert.corpus import load_split
    from zhbert.data import BatchBuilder
    from zhbert.layout import batch_layout

    dcfg = replace(preset(arch).data, format=kind, seq_len=seq_len, batch_size=batch_size,
                   whole_word_mask=False)
    builder = BatchBuilder(load_split(info.path, "train"), info, dcfg, seed=0)
    builder.build(10_000)  # first-call costs (permutation of the epoch) are not per batch
    batches, times = [], []
    for g in range(n):
        t = time.perf_counter()
        b = builder.build(g)
        b.layout = batch_layout(b.input_ids, None if kind == "packed" else b.attention_mask,
                                b.mlm_labels)
        batches.append(b)
        times.append(time.perf_counter() - t)
    return batches, statistics.median(times)


def model_flops(cfg, n_encoder: int, lengths: torch.Tensor, n_masked: int | None = None) -> float:
    """Encoder ``6 N T`` + MLM head ``6 (H^2 + H V) M`` at the M masked positions only (the
    only predictions the loss needs) + attention ``12 * layers * hidden * sum n_i^2``.

    Without ``n_masked`` the head is not counted separately: ``n_encoder`` then holds whatever
    the caller counts at every real token (benchmarks/gpu_check.py's coarser count)."""
    lengths = lengths.double()
    attention = 12 * cfg.num_layers * cfg.hidden_size * float((lengths**2).sum())
    head = cfg.hidden_size * cfg.hidden_size + cfg.hidden_size * cfg.vocab_size
    masked = 0.0 if n_masked is None else 6.0 * head * n_masked
    return 6.0 * n_encoder * float(lengths.sum()) + masked + attention


# ----------------------------------------------------------------------------- the two sides


class Side:
    """A model, its optimizer and its ``step(batch)``; ``fwd`` may be the compiled model."""

    def __init__(self, name, model, fwd, step_fn, optim_desc):
        self.name, self.model, self.fwd, self.step_fn = name, model, fwd, step_fn
        self.optim_desc, self.times, self.tps = optim_desc, [], []

    def step(self, batch) -> None:
        self.step_fn(self, batch)


def build_sides(case: Case, args, info):
    """Ours and HF with identical initial weights (ours copied via to_hf_state_dict)."""
    from transformers import BertForMaskedLM

    from zhbert.export import hf_config, to_hf_state_dict
    from zhbert.lr_schedule import lr_factor
    from zhbert.model import BertForPretraining
    from zhbert.training.optim import make_optimizer
    from zhbert.training.schedule import set_lr

    dev = torch.device(args.device)
    cfg = model_config(case.arch, info, args.seq_len)
    torch.manual_seed(0)
    ours = BertForPretraining(cfg).to(dev)
    hf = BertForMaskedLM._from_config(hf_config(cfg), attn_implementation="sdpa")
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    if unexpected or set(missing) - {"cls.predictions.decoder.weight"}:
        raise RuntimeError(f"weight copy failed: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    hf.to(dev)
    ocfg = preset(case.arch).optim
    if args.ours_optim != "preset":
        ocfg = replace(ocfg, fused=args.ours_optim)
    opt = make_optimizer(ours, ocfg, dev)
    updates = [0]
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=ocfg.lr)
    amp = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if case.dtype == "bf16"
           else contextlib.nullcontext())
    packed = case.kind == "packed"

    def ours_step(side, b):  # mirrors zhbert.training.loop.train_step (grad_accum 1)
        with amp:
            out = side.fwd(b.input_ids, attention_mask=None if packed else b.attention_mask,
                           token_type_ids=b.token_type_ids, mlm_labels=b.mlm_labels,
                           layout=b.layout)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), ocfg.clip_norm)
        set_lr(opt, ocfg.lr * lr_factor(updates[0] + 1, ocfg.warmup_steps, 10**6, ocfg.schedule))
        opt.step()
        opt.zero_grad(set_to_none=True)
        updates[0] += 1

    def hf_step(side, b):  # the plain loop
        with amp:
            loss = side.fwd(input_ids=b.input_ids, attention_mask=b.attention_mask,
                            token_type_ids=b.token_type_ids, labels=b.mlm_labels).loss
        loss.backward()
        hf_opt.step()
        hf_opt.zero_grad()

    impl = {k: v for k, v in opt.defaults.items() if k in ("fused", "foreach") and v}
    ours_desc = f"AdamW({', '.join(impl) or 'for-loop'}; 2 groups), clip, LambdaLR"
    hf_impl = {k: v for k, v in hf_opt.defaults.items() if k in ("fused", "foreach") and v}
    hf_desc = f"AdamW() defaults ({', '.join(hf_impl) or 'for-loop'})"
    return cfg, Side("ours", ours, ours, ours_step, ours_desc), Side("hf", hf, hf, hf_step,
                                                                     hf_desc)


def loss_check(ours, hf, batch, device: str) -> tuple[float, float]:
    """Eval-mode (dropout off) fp32 MLM losses of both models on ``batch``."""
    b = batch.to(torch.device(device))
    ours.eval()
    hf.eval()
    with torch.no_grad():
        a = ours(b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.token_type_ids,
                 mlm_labels=b.mlm_labels).loss.item()
        h = hf(input_ids=b.input_ids, attention_mask=b.attention_mask,
               token_type_ids=b.token_type_ids, labels=b.mlm_labels).loss.item()
    ours.train()
    hf.train()
    return a, h


# ----------------------------------------------------------------------------- one case


def run_case(case: Case, args, info, peaks: dict, machine: dict) -> dict:
    """Warm up, then alternate timed steps of both sides; return the case's record."""
    bs = args.batch_size or (8 if args.device == "cpu" and case.arch == "paper"
                             else preset(case.arch).data.batch_size)
    repeats = args.repeats or (2 if args.quick else (5 if case.arch == "paper" else 8))
    # compiled rows warm up longer: unpadding gives new shapes, which recompile at first sight
    warmup = (3 if case.compile else 1) if args.warmup is None else args.warmup
    batches, build_s = make_batches(info, case.arch, case.kind, bs, args.seq_len,
                                    warmup + repeats)
    cfg, ours, hf = build_sides(case, args, info)
    loss_ours, loss_hf = loss_check(ours.model, hf.model, batches[0], args.device)
    rec = {"case": case.name, "arch": case.arch, "batch_kind": case.kind, "dtype": case.dtype,
           "compile": case.compile, "device": args.device, "batch_size": bs,
           "seq_len": args.seq_len, "threads": args.threads, "repeats": repeats,
           "warmup": warmup, "dropout": cfg.dropout, "attention_dropout": cfg.attention_dropout,
           "loss_ours": loss_ours, "loss_hf": loss_hf, "loss_diff": abs(loss_ours - loss_hf),
           "loss_check": "eval-mode (dropout off) fp32 forward on the first batch",
           "optimizer_ours": ours.optim_desc, "optimizer_hf": hf.optim_desc,
           "machine": machine, "load_before": load_avg()}
    if case.compile:
        try:
            ours.fwd, hf.fwd = torch.compile(ours.model), torch.compile(hf.model)
        except Exception as exc:  # compile is optional: report and skip the row
            return {**rec, "skipped": f"torch.compile failed: {type(exc).__name__}: {exc}"}
    dev = torch.device(args.device)
    batches = [b.to(dev) for b in batches]
    for r in range(warmup + repeats):
        b = batches[r]
        for side in (ours, hf) if r % 2 == 0 else (hf, ours):
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
                side.tps.append(b.n_tokens / side.times[-1])
    return finish_record(rec, cfg, ours, hf, batches[warmup:], peaks[case.dtype], build_s)


def finish_record(rec, cfg, ours: Side, hf: Side, timed, peak, build_s) -> dict:
    """Medians, ratio, MFU and data wait from the timed steps."""
    emb = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) * cfg.hidden_size
    n_head = sum(p.numel() for p in ours.model.mlm_head.parameters())  # untied decoder included
    n_encoder = ours.model.num_parameters() - emb - n_head
    flops = [model_flops(cfg, n_encoder, b.attention_mask.sum(1).cpu(),
                         int((b.mlm_labels != -100).sum())) for b in timed]
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
    rec["real_tokens_per_step"] = statistics.mean(b.n_tokens for b in timed)
    rec["padded_tokens_per_step"] = timed[0].input_ids.numel()
    rec["model_flops_per_step"] = statistics.mean(flops)
    rec["encoder_params"] = n_encoder
    rec["peak_flops"] = peak
    rec["data_build_s"] = build_s
    rec["data_wait_frac"] = build_s / (build_s + rec["ours_step_s_median"])
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
    dtypes = args.dtype or (["fp32", "bf16"] if bf16_supported(args.device) else ["fp32"])
    base = [Case(a, k, d) for a in args.arch for k in args.batch_kind for d in dtypes]
    return base + ([replace(c, compile=True) for c in base] if args.compile else [])


def markdown_table(records: list[dict]) -> str:
    head = ("| case | batch | real tok/step | ours tok/s | HF tok/s | ratio | MFU ours | MFU HF "
            "| loss diff | data wait | ours steps/s | HF steps/s |")
    lines = [head, "|" + " --- |" * 12]
    for r in records:
        if "skipped" in r:
            lines.append(f"| {r['case']} | {r['batch_size']} | skipped: {r['skipped'][:80]} |"
                         + " |" * 9)
            continue
        lines.append(
            f"| {r['case']} | {r['batch_size']}x{r['seq_len']} | {r['real_tokens_per_step']:.0f} "
            f"| {r['ours_tokens_per_s']:.0f} | {r['hf_tokens_per_s']:.0f} | {r['ratio']:.2f}x "
            f"| {r['mfu_ours']:.1%} | {r['mfu_hf']:.1%} | {r['loss_diff']:.1e} "
            f"| {r['data_wait_frac']:.1%} | {r['ours_steps_per_s']:.3f} "
            f"| {r['hf_steps_per_s']:.3f} |")
    return "\n".join(lines)


def run_benchmark(argv=None) -> list[dict]:
    """Run the selected cases; print the table; return (and with --json write) the records."""
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if min(args.threads, args.seq_len, args.batch_size or 1, args.repeats or 1) < 1:
        raise UserError("--threads, --seq-len, --batch-size and --repeats must be >= 1")
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
    if args.json:
        from zhbert.io_utils import atomic_write_json

        atomic_write_json(args.json, records)
    if bad:
        raise UserError(f"loss check failed (> {LOSS_TOL}) for: {', '.join(bad)}")
    return records


def main(argv=None) -> int:
    run_benchmark(argv)
    return 0


if __name__ == "__main__":
    run_cli(main)
