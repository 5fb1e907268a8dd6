"""A tiny trainable network and random source/target batches for method-level step tests."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from duda.models import build_segmentor
from duda.optim import build_optimizer, build_scheduler

HEAD = OmegaConf.create({"name": "segformer", "embed_dim": 32, "dropout": 0.1, "dilations": None})
OPT = OmegaConf.create(
    {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.01, "head_lr_mult": 10}
)
SCHED = OmegaConf.create(
    {"name": "poly_warmup", "warmup_iters": 0, "warmup_ratio": 1e-6, "power": 1.0, "min_lr": 0.0}
)


def tiny_trainable(drop_path_rate: float = 0.1):
    """MiT-B0 with a 32-channel SegFormer head, its AdamW and a 10-iteration schedule."""
    backbone = OmegaConf.create(
        {"name": "mit_b0", "pretrained": None, "drop_path_rate": drop_path_rate}
    )
    model = build_segmentor(backbone, HEAD, 19)
    opt = build_optimizer(model, OPT)
    return model, opt, build_scheduler(opt, SCHED, 10, 1e-3)


def uda_batches(size: int = 64, seed: int = 0):
    """2 labelled source crops and 2 target crops (with labels for quality logging only)."""
    g = torch.Generator().manual_seed(seed)
    source = {
        "image": torch.randn(2, 3, size, size, generator=g),
        "label": torch.randint(0, 19, (2, size, size), generator=g),
    }
    target = {
        "image": torch.randn(2, 3, size, size, generator=g),
        "label": torch.randint(0, 19, (2, size, size), generator=g),
        "valid": torch.ones(2, size, size, dtype=torch.uint8),
    }
    return source, target
