"""Assemble one training run from a composed config: data, method, logger, trainer.

Everything that can be checked without training is checked before the data is touched: the
run directory must take files, the checkpoint to resume from must be intact and of the same
architecture, the networks must build (and their weight files fit them).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from duda.config import ConfigError, plain
from duda.data.build import build_domain, ensure_synthetic, skipped_samples
from duda.data.datasets import DatasetLayoutError
from duda.data.loaders import eval_loader, train_loader
from duda.distill.build import build_method
from duda.engine.checkpoint import ensure_writable, remove_stale_temporaries
from duda.engine.device import resolve_device, resolve_precision
from duda.engine.evaluation import EvalSettings
from duda.engine.metrics import format_table
from duda.engine.preemption import StopRequest
from duda.engine.resume import open_resume_point, reference_digests, resume_into
from duda.engine.trainer import Schedule, Trainer
from duda.logging import RunLogger, build_run_logger
from duda.logging.wandb_logger import resolve_mode
from duda.uda.method import Method


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


def build_method_or_explain(cfg: DictConfig, device: torch.device, amp_dtype) -> Method:
    """The method's networks; a setting they cannot be built from (a weight file of another
    architecture, a method without its networks) is a configuration error, not a crash."""
    try:
        return build_method(cfg, device, amp_dtype)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def open_run_logger(
    cfg: DictConfig,
    run_dir: Path,
    config: dict[str, Any],
    env_mode: str | None,
    has_key: bool,
    environment: dict[str, Any] | None,
) -> tuple[RunLogger, str]:
    """The run logger; when an online W&B cannot start (no network, a bad key), an offline
    one in the run directory instead, and the note says so."""
    logger, note = build_run_logger(cfg.logger, run_dir, config, env_mode, has_key, environment)
    mode = resolve_mode(cfg.logger.mode, env_mode, has_key) if cfg.logger.name == "wandb" else None
    if mode == "online" and logger.wandb is None:
        offline_cfg = OmegaConf.merge(cfg.logger, {"mode": "offline"})
        logger, offline_note = build_run_logger(
            offline_cfg, run_dir, config, env_mode, has_key, environment
        )
        note = f"{note}; falling back to offline logging. {offline_note}"
    return logger, note


def run_training(
    cfg: DictConfig,
    run_dir: Path,
    wandb_env_mode: str | None = None,
    has_wandb_key: bool = False,
    environment: dict[str, Any] | None = None,
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Train as configured and return the final results (also written to results.json);
    `environment` (packages, git, GPUs) goes to env.json and W&B; `stop` tells the loop that
    a signal asked it to checkpoint and end (`Preempted`)."""
    t = cfg.trainer
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    ensure_writable(checkpoint_dir)
    remove_stale_temporaries(checkpoint_dir)
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    references = reference_digests([e.checkpoint for e in cfg.distill.extra_teachers])
    point = open_resume_point(checkpoint_dir, t.resume, config, references)
    if t.threads:
        torch.set_num_threads(t.threads)
    device = resolve_device(t.device)
    precision = resolve_precision(t.precision.value, device)
    if t.precision.value == "auto":
        print(f"trainer.precision=auto: {precision} on {device.type}")
    amp_dtype = torch.bfloat16 if precision == "bf16" else None
    seed_everything(cfg.seed)
    method = build_method_or_explain(cfg, device, amp_dtype)

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
    target = build_target(cfg, getattr(method, "needs_target", False))
    workers = t.num_workers
    source_loader = train_loader(source.train, t.batch_size, workers, cfg.seed)
    target_loader = (
        train_loader(target.train, t.batch_size, workers, cfg.seed + 1)
        if method.needs_target
        else None
    )

    logger, note = open_run_logger(cfg, run_dir, config, wandb_env_mode, has_wandb_key, environment)
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
        keep_checkpoints=t.keep_checkpoints,
        max_nonfinite_steps=t.max_nonfinite_steps,
        stop=stop,
        references=references,
    )
    try:
        if point is not None:
            resume_into(trainer, point, run_dir / "metrics.jsonl")
            print(f"Resuming from {point.path}: iteration {point.iteration} of {t.max_iters}")
            point = None  # the loaded copy of the state is no longer needed
        results = trainer.fit()
    finally:
        logger.finish()
    # Last, after W&B's own closing lines, so the run ends with the table.
    print(format_table(results, title=f"Target val, iteration {results['iteration']}:"))
    return results
