"""Assemble one training run from a composed config: data, method, logger, trainer."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from duda.config import plain
from duda.data.build import build_domain, ensure_synthetic, skipped_samples
from duda.data.datasets import DatasetLayoutError
from duda.data.loaders import eval_loader, train_loader
from duda.distill.build import build_method
from duda.engine.device import resolve_device
from duda.engine.evaluation import EvalSettings
from duda.engine.metrics import format_table
from duda.engine.trainer import Schedule, Trainer
from duda.logging import build_run_logger


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_target(cfg: DictConfig, needs_target: bool):
    """The target domain; its training labels are loaded only to measure pseudo-label quality
    (`uda.log_pl_quality`), when the split has them; methods never train on them."""
    want_labels = needs_target and cfg.uda.log_pl_quality

    def build(labels: bool):
        return build_domain(
            cfg.dataset.target,
            cfg.seed + 1,
            with_val=True,
            train_labels=labels,
            on_bad_sample=cfg.dataset.on_bad_sample,
        )

    try:
        return build(want_labels)
    except DatasetLayoutError:
        if not want_labels:
            raise
        print("target training split has no labels: pseudo-label accuracy will not be logged")
        return build(False)


def run_training(
    cfg: DictConfig, run_dir: Path, wandb_env_mode: str | None = None, has_wandb_key: bool = False
) -> dict[str, Any]:
    """Train as configured and return the final results (also written to results.json)."""
    t = cfg.trainer
    seed_everything(cfg.seed)
    if t.threads:
        torch.set_num_threads(t.threads)
    device = resolve_device(t.device)
    amp_dtype = torch.bfloat16 if t.precision.value == "bf16" else None

    ensure_synthetic(cfg.dataset)
    source = build_domain(
        cfg.dataset.source,
        cfg.seed,
        with_val=False,
        rcs=cfg.dataset.rcs,
        on_bad_sample=cfg.dataset.on_bad_sample,
    )
    if hasattr(source.train, "describe"):  # rare-class sampling: say once what it draws
        print(source.train.describe())
    method = build_method(cfg, device, amp_dtype)
    target = build_target(cfg, getattr(method, "needs_target", False))
    workers = t.num_workers
    source_loader = train_loader(source.train, t.batch_size, workers, cfg.seed)
    target_loader = (
        train_loader(target.train, t.batch_size, workers, cfg.seed + 1)
        if method.needs_target
        else None
    )

    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    logger, note = build_run_logger(cfg.logger, run_dir, config, wandb_env_mode, has_wandb_key)
    print(note)
    window = t.eval_crop_hw or cfg.dataset.target.crop_hw
    eval_settings = EvalSettings(
        mode=t.eval_mode.value,
        window_hw=window,
        stride_hw=t.eval_stride_hw,
        max_images=t.eval_max_images,
        autocast_dtype=amp_dtype,
        progress=t.progress,
        metrics=[plain(m) for m in cfg.dataset.metrics],
    )
    trainer = Trainer(
        method=method,
        source=source_loader,
        target=target_loader,
        val=eval_loader(target.val, t.eval_batch_size, min(workers, 2)),
        schedule=Schedule(t.max_iters, t.log_interval, t.eval_interval, t.checkpoint_interval),
        eval_settings=eval_settings,
        logger=logger,
        run_dir=run_dir,
        device=device,
        model_name=f"{cfg.model.backbone.name}+{cfg.model.head.name}",
        config=config,
        progress=t.progress,
        skipped=lambda: skipped_samples(source, target),
    )
    try:
        results = trainer.fit()
    finally:
        logger.finish()
    # Last, after W&B's own closing lines, so the run ends with the table.
    print(format_table(results, title=f"Target val, iteration {results['iteration']}:"))
    return results
