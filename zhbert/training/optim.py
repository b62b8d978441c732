"""AdamW with weight decay only on matrices (never on biases, LayerNorm or embeddings' norms)."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from zhbert.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and biases + LayerNorm parameters without decay."""
    decay, no_decay, seen = [], [], set()
    norm_params = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm)
                   for p in m.parameters(recurse=False)}
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))  # tied weights appear once
        if p.ndim < 2 or id(p) in norm_params or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _impl_kwargs(choice: str, device: torch.device) -> dict:
    """fused on CUDA and CPU (or when asked and supported), foreach elsewhere.

    On the CPU fused is the fastest of the three and foreach the slowest; the times of one
    ``step()`` are measured by benchmarks/optimizer_step.py (docs/TRAINING.md, "Training
    throughput").
    """
    sig = inspect.signature(torch.optim.AdamW)
    if choice == "default":
        return {"foreach": False}
    wants_fused = choice == "fused" or (choice == "auto" and device.type in ("cuda", "cpu"))
    if wants_fused and "fused" in sig.parameters:
        return {"fused": True}
    return {"foreach": True} if "foreach" in sig.parameters else {}


def make_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` with the configured betas/eps and implementation."""
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             **_impl_kwargs(cfg.fused, device))


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Restore a checkpoint's moment estimates and step counts, keeping the configured settings.

    ``Optimizer.load_state_dict`` would also bring back the saved lr, betas, eps, weight decay
    and implementation flags; here the values ``optimizer`` was built with (the current config)
    win, so a resume with changed optimizer settings applies them (docs/TRAINING.md, "Resume").
    """
    configured = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, settings in zip(optimizer.param_groups, configured, strict=True):
        group.update(settings)
