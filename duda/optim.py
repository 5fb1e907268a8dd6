"""Optimizer and learning-rate schedule of the reference UDA code (mmcv semantics).

AdamW over parameter groups (head at lr × head_lr_mult, no weight decay on norms, biases and
other 1-D parameters), and a per-iteration schedule: poly decay whose value is multiplied by a
linear warm-up factor, per group, exactly as mmcv's `PolyLrUpdaterHook` with linear warm-up.
"""

from __future__ import annotations

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


def build_optimizer(model: torch.nn.Module, cfg: Any) -> torch.optim.Optimizer:
    if cfg.name != "adamw":
        raise ValueError(f"unknown optimizer '{cfg.name}'; expected 'adamw'")
    groups = model.param_groups(cfg.lr, cfg.weight_decay, cfg.head_lr_mult)
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
    )


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
