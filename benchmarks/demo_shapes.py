"""Step-time ratios of candidate demo models, and of the CPU attention implementations.

Each candidate trains on the same random batch (the demo's 64 x 64 tokens, 25 % labelled, bf16
autocast on the CPU); candidates are timed in turn, round after round, so a busy machine slows
them alike and the ratios stay meaningful when the absolute times do not.  What it backs in
docs/TRAINING.md: the cost of a wider or deeper demo model per step, and that the modern model's
written-out attention beats PyTorch's fused CPU kernel at these shapes.

    python benchmarks/demo_shapes.py --json results/bench_demo_shapes.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import zhbert.modern as modern  # noqa: E402
from zhbert.model_config import BertConfig  # noqa: E402
from zhbert.models import build_model  # noqa: E402
from zhbert.training.precision import cpu_native_bf16  # noqa: E402

# name -> (hidden, layers, heads, feed-forward units); the first is the reference of the ratios.
SHAPES = {"256x4": (256, 4, 4, 640), "256x3": (256, 3, 4, 640), "256x6": (256, 6, 4, 640),
          "320x4": (320, 4, 5, 832), "384x4": (384, 4, 6, 1024), "192x4": (192, 4, 3, 512),
          "256x2": (256, 2, 4, 640)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=4, help="timing rounds (default 4)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per candidate and round")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--vocab", type=int, default=5255, help="vocabulary size (demo corpus: 5255)")
    p.add_argument("--batch", type=int, default=64, help="sequences per step (default 64)")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per sequence (default 64)")
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                   help="bf16 autocast (default) or fp32, as the demo trains on a CPU without "
                        "native bf16 (in fp32 the model uses the fused kernel itself, so "
                        "256x4-sdpa then times the same model)")
    p.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=None,
                   help="candidates to time (default: all; 256x4 is always timed, as the "
                        "reference of the ratios)")
    p.add_argument("--json", type=Path, default=None, help="write the ratios to this JSON file")
    return p.parse_args(argv)


def _sdpa(q, k, v, mask, p):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)


def candidates(vocab: int, names=None) -> dict[str, tuple]:
    """(model, optimizer, attention function) per candidate; "256x4-sdpa" uses the fused kernel."""
    out = {}
    for name, (H, L, heads, ffn) in SHAPES.items():
        if names and name not in names and name != "256x4":
            continue
        cfg = BertConfig(arch="modern", vocab_size=vocab, hidden_size=H, num_layers=L,
                         num_heads=heads, intermediate_size=ffn, max_position_embeddings=128,
                         dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-5)
        torch.manual_seed(0)
        model = build_model(cfg)
        out[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3), modern.attention_math)
    model = out["256x4"][0]
    out["256x4-sdpa"] = (model, out["256x4"][1], _sdpa)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, args.vocab, (args.batch, args.seq_len), generator=g)
    labels = torch.where(torch.rand(ids.shape, generator=g) < 0.25, ids, -100)
    runs = candidates(args.vocab, args.shapes)
    amp = args.precision == "bf16"
    original = modern.attention_math

    def step(model, opt, attention) -> None:
        modern.attention_math = attention
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss = model(ids, mlm_labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        finally:
            modern.attention_math = original

    total = dict.fromkeys(runs, 0.0)
    for _ in range(args.rounds):
        for name, (model, opt, attention) in runs.items():
            step(model, opt, attention)  # warm-up step, not timed
            start = time.perf_counter()
            for _ in range(args.steps):
                step(model, opt, attention)
            total[name] += time.perf_counter() - start
    n = args.rounds * args.steps
    result = {
        "step_time_ratio": {k: round(v / total["256x4"], 3) for k, v in total.items()},
        "mean_step_s": {k: round(v / n, 4) for k, v in total.items()},
        "parameters": {k: runs[k][0].num_parameters() for k in SHAPES if k in runs},
        "settings": {"batch": args.batch, "seq_len": args.seq_len, "vocab": args.vocab,
                     "precision": args.precision, "native_bf16": cpu_native_bf16(),
                     "threads": torch.get_num_threads(), "rounds": args.rounds,
                     "steps": args.steps, "torch": torch.__version__},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        from zhbert.io_utils import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
