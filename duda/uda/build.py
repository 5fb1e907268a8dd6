"""Build the configured UDA method with its networks and optimizers."""

from __future__ import annotations

from typing import Any

import torch

from duda.models.build import build_model
from duda.optim import build_optimizer, build_scheduler
from duda.uda.method import Method
from duda.uda.mixing import StrongAugment
from duda.uda.self_training import Components, SelfTraining
from duda.uda.source_only import SourceOnly

# `oracle` is the same supervised step as `source_only`; its experiments point `dataset.source`
# at the labelled target training split, which gives the upper bound UDA methods are measured
# against. `dacs`, `daformer` and `mic` are one self-training method with more components on.
SUPERVISED = ("source_only", "oracle")
SELF_TRAINING = ("dacs", "daformer", "mic")
METHODS = SUPERVISED + SELF_TRAINING


def components_from_config(uda: Any, loss: Any) -> Components:
    return Components(
        ema_alpha=uda.ema_alpha,
        ema_buffers=uda.ema_buffers,
        teacher_bn_train=uda.teacher_bn_train,
        pseudo_threshold=uda.pseudo_threshold,
        per_image_confidence=uda.per_image_confidence,
        mix_weight=loss.mix,
        batch_level_classes=uda.mix.reference_quirks,
        augment=StrongAugment(uda.mix.jitter_p, uda.mix.jitter_strength, uda.mix.blur_p),
        fd_weight=loss.fd if uda.fd.enabled else 0.0,
        fd_classes=tuple(uda.fd.classes),
        fd_min_ratio=uda.fd.min_ratio,
        mic_weight=loss.mic if uda.mic.enabled or uda.base == "mic" else 0.0,
        mic_block=uda.mic.block_size,
        mic_ratio=uda.mic.ratio,
    )


def build_trainable(model_cfg: Any, cfg: Any, device: torch.device):
    """A segmentor (with the `model.*` levers) and its optimizer and schedule, as every trained
    network of a method gets."""
    model = build_model(model_cfg, cfg.dataset.num_classes).to(device)
    optimizer = build_optimizer(model, cfg.optimizer)
    scheduler = build_scheduler(optimizer, cfg.scheduler, cfg.trainer.max_iters, cfg.optimizer.lr)
    return model, optimizer, scheduler


def build_method(cfg: Any, device: torch.device, amp_dtype: torch.dtype | None) -> Method:
    name = cfg.uda.name
    if name not in METHODS:
        raise ValueError(f"unknown uda method '{name}'; expected one of {list(METHODS)}")
    model, optimizer, scheduler = build_trainable(cfg.model, cfg, device)
    if name in SUPERVISED:
        return SourceOnly(model, optimizer, scheduler, cfg.loss.source, amp_dtype)
    return build_self_training(cfg, model, optimizer, scheduler, amp_dtype)


def build_self_training(cfg: Any, model, optimizer, scheduler, amp_dtype) -> SelfTraining:
    return SelfTraining(
        model,
        optimizer,
        scheduler,
        components_from_config(cfg.uda, cfg.loss),
        source_weight=cfg.loss.source,
        num_classes=cfg.dataset.num_classes,
        amp_dtype=amp_dtype,
        seed=cfg.seed,
    )
