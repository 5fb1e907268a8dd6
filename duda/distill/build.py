"""Build any configured method; DUDA here, the single-network methods in `duda/uda/build.py`.

DUDA sits above the self-training method it reuses for its large pair, so its factory lives in
the distillation layer and the training entry point asks this module for every method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from duda.distill.fusion import build_fusion
from duda.distill.inconsistency import InconsistencyTracker
from duda.distill.schedules import build_schedule
from duda.distill.step import DUDA
from duda.models.build import build_model
from duda.uda.build import build_method as build_uda_method
from duda.uda.build import build_self_training, build_trainable
from duda.uda.method import Method

BASES = ("daformer", "mic")


def build_method(cfg: Any, device: torch.device, amp_dtype: torch.dtype | None) -> Method:
    if cfg.uda.name != "duda":
        if cfg.distill.name != "none":
            raise ValueError(
                f"distill={cfg.distill.name} needs uda=duda (got uda={cfg.uda.name}); "
                "or use distill=none"
            )
        return build_uda_method(cfg, device, amp_dtype)
    return build_duda(cfg, device, amp_dtype)


def _large_model_cfg(cfg: Any) -> Any:
    if cfg.model.large is None:
        raise ValueError(
            "uda=duda needs the large network: add model/large=<name> (e.g. model/large=mit_b5)"
        )
    large = OmegaConf.to_container(cfg.model, resolve=True)
    large.update(backbone=large["large"]["backbone"], head=large["large"]["head"])
    return OmegaConf.create(large)


def build_duda(cfg: Any, device: torch.device, amp_dtype: torch.dtype | None) -> DUDA:
    d = cfg.distill
    if d.name != "duda":
        raise ValueError("uda=duda needs distill=duda (the distillation settings)")
    if cfg.uda.base not in BASES:
        raise ValueError(f"uda.base={cfg.uda.base}: expected one of {list(BASES)}")
    if not 0 <= d.pre_iters <= cfg.trainer.max_iters:
        raise ValueError(
            f"distill.pre_iters={d.pre_iters} must lie in "
            f"0..trainer.max_iters={cfg.trainer.max_iters}"
        )
    large_cfg = _large_model_cfg(cfg)
    large = build_self_training(cfg, *build_trainable(large_cfg, cfg, device), amp_dtype)
    student, optimizer, scheduler = build_trainable(cfg.model, cfg, device)
    classes = cfg.dataset.num_classes
    extra = [load_extra_teacher(e, large_cfg, classes, device) for e in d.extra_teachers]
    return DUDA(
        large,
        student,
        optimizer,
        scheduler,
        pre_iters=d.pre_iters,
        kd_schedule=build_schedule(d),
        pl_schedule=build_schedule(d, weight=cfg.loss.mix) if d.pl_ramp else None,
        fuse=build_fusion(d.fusion),
        tracker=(
            InconsistencyTracker.from_config(d.inconsistency, cfg.dataset.num_classes)
            if d.inconsistency.enabled
            else None
        ),
        extra_teachers=extra,
        tau=d.tau,
        kd_weight=cfg.loss.kd,
        source_weight=cfg.loss.source,
        inconsistency_weight=cfg.loss.inconsistency,
        finetune_source_weight=d.finetune.source_weight,
        update_teacher=d.finetune.update_teacher,
        finetune_mix=d.finetune.mix,
        student_in_stage1=d.student_in_stage1,
        amp_dtype=amp_dtype,
    )


def _state_dict_of(checkpoint: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The network weights in any checkpoint this project writes: `model_final.pt` (`model`),
    a training checkpoint (`method.teacher` of self-training, else `method.model`), or a bare
    state dict."""
    if "model" in checkpoint and isinstance(checkpoint["model"], dict):
        return checkpoint["model"]
    method = checkpoint.get("method")
    if isinstance(method, dict):
        for key in ("teacher", "model", "student"):
            if isinstance(method.get(key), dict):
                return method[key]
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise ValueError(
        f"{path}: no network weights found; expected a model_final.pt or a checkpoints/iter_N.pt "
        "written by duda.train, or a plain state dict"
    )


def load_extra_teacher(
    entry: Any, large_cfg: Any, num_classes: int, device: torch.device
) -> nn.Module:
    """A frozen network for multi-teacher fusion. Its architecture: `entry.model` if given, else
    the one recorded in the checkpoint's config, else the teacher's."""
    path = Path(entry.checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"distill.extra_teachers: checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model_cfg = entry.model
    if model_cfg is None:
        recorded = (
            checkpoint.get("config", {}).get("model") if isinstance(checkpoint, dict) else None
        )
        model_cfg = OmegaConf.create(recorded) if recorded else large_cfg
    net = build_model({"backbone": model_cfg.backbone, "head": model_cfg.head}, num_classes)
    try:
        net.load_state_dict(_state_dict_of(checkpoint, path))
    except RuntimeError as err:
        raise ValueError(
            f"distill.extra_teachers: {path} does not fit {model_cfg.backbone.name}+"
            f"{model_cfg.head.name}; set its `model:` entry. {str(err).splitlines()[0]}"
        ) from err
    return net.to(device).eval().requires_grad_(False)
