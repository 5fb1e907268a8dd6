"""Build the configured UDA method with its networks and optimizers."""

from __future__ import annotations

from typing import Any

import torch

from duda.models import build_segmentor
from duda.optim import build_optimizer, build_scheduler
from duda.uda.method import Method
from duda.uda.source_only import SourceOnly

# `oracle` is the same supervised step; its experiments point `dataset.source` at the labelled
# target training split, which gives the upper bound UDA methods are measured against.
METHODS = ("source_only", "oracle")


def build_method(cfg: Any, device: torch.device, amp_dtype: torch.dtype | None) -> Method:
    name = cfg.uda.name
    if name not in METHODS:
        raise ValueError(f"unknown uda method '{name}'; expected one of {list(METHODS)}")
    model = build_segmentor(cfg.model.backbone, cfg.model.head, cfg.dataset.num_classes).to(device)
    optimizer = build_optimizer(model, cfg.optimizer)
    scheduler = build_scheduler(optimizer, cfg.scheduler, cfg.trainer.max_iters, cfg.optimizer.lr)
    return SourceOnly(model, optimizer, scheduler, cfg.loss.source, amp_dtype)
