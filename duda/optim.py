"""Optimizer and learning-rate schedule of the reference UDA code (mmcv semantics).

AdamW over parameter groups (head at lr × head_lr_mult, no weight decay on norms, biases and
other 1-D parameters), and a per-iteration schedule: poly decay whose value is multiplied by a
linear warm-up factor, per group, exactly as mmcv's `PolyLrUpdaterHook` with linear warm-up.
The optimizer refuses updates with non-finite gradients (`FiniteAdamW`), so one bad batch cannot
turn every weight into NaN; the trainer's divergence guard counts the refusals.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch


def poly_warmup_factor(
    it: int, max_iters: int, warmup_iters: int, warmup_ratio: float, power: float, min_ratio: float
) -> float:
    """Multiplier of the base lr at iteration `it` (0-based)."""
    progress = min(it, max_iters) / max_iters
    factor = (1 - progress) ** power * (1 - min_ratio) + min_ratio
    if it < warmup_iters:
        factor *= 1 - (1 - it / warmup_iters) * (1 - warmup_ratio)
    return factor


def grads_finite(optimizer: torch.optim.Optimizer) -> bool:
    """Whether every gradient the optimizer would apply is free of inf and NaN.

    Uses the fused check of AMP's GradScaler (one pass, one device sync per device and dtype);
    it multiplies the gradients by the scale 1.0, which leaves them unchanged.
    """
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = defaultdict(list)
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                groups[(p.grad.device, p.grad.dtype)].append(p.grad)
    for (device, _), grads in groups.items():
        found = torch.zeros(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones(1, device=device))
        if found.item():
            return False
    return True


class FiniteAdamW(torch.optim.AdamW):
    """AdamW that skips a step whose gradients hold inf or NaN: weights and moments stay as
    they were, the gradients are dropped, and `skipped_steps` counts it."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.skipped_steps = 0

    def step(self, closure: Any = None) -> Any:
        if closure is None and not grads_finite(self):
            self.skipped_steps += 1
            self.zero_grad(set_to_none=True)
            return None
        return super().step(closure)


def build_optimizer(model: torch.nn.Module, cfg: Any) -> torch.optim.Optimizer:
    if cfg.name != "adamw":
        raise ValueError(f"unknown optimizer '{cfg.name}'; expected 'adamw'")
    groups = model.param_groups(cfg.lr, cfg.weight_decay, cfg.head_lr_mult)
    return FiniteAdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Any, max_iters: int, base_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    if cfg.name != "poly_warmup":
        raise ValueError(f"unknown scheduler '{cfg.name}'; expected 'poly_warmup'")
    min_ratio = cfg.min_lr / base_lr if base_lr > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: poly_warmup_factor(
            it, max_iters, cfg.warmup_iters, cfg.warmup_ratio, cfg.power, min_ratio
        ),
    )
