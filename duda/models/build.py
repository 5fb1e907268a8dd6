"""Assemble a :class:`Segmentor` from the Hydra ``model`` config group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from duda.models.backbones import build_backbone
from duda.models.heads import build_head
from duda.models.levers import apply_levers
from duda.models.segmentor import Segmentor

__all__ = ["build_model", "build_segmentor"]


def _plain(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    # Model constructors must not see DictConfig: lists would stay ListConfig and
    # interpolations would resolve lazily, long after config validation.
    if isinstance(cfg, DictConfig):
        return dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    return dict(cfg)


def build_segmentor(
    backbone: Mapping[str, Any] | DictConfig,
    head: Mapping[str, Any] | DictConfig,
    num_classes: int,
) -> Segmentor:
    """Build backbone then head, sizing the head from the backbone's ``channels``."""
    bb = _plain(backbone)
    # Unset options (e.g. `dilations` for a head without ASPP) fall back to the head's defaults.
    hd = {k: v for k, v in _plain(head).items() if v is not None}
    net = build_backbone(
        bb.pop("name"),
        pretrained=bb.pop("pretrained", None),
        drop_path_rate=bb.pop("drop_path_rate", 0.1),
        output_stride=bb.pop("output_stride", None),
        **bb,
    )
    dec = build_head(hd.pop("name"), net.channels, num_classes, **hd)
    return Segmentor(net, dec)


def build_model(model: Mapping[str, Any] | DictConfig, num_classes: int) -> Segmentor:
    """The whole ``model`` config group: the segmentor, then the memory/speed levers."""
    return apply_levers(
        build_segmentor(model["backbone"], model["head"], num_classes),
        channels_last=bool(model.get("channels_last", False)),
        grad_checkpointing=bool(model.get("grad_checkpointing", False)),
        compile=bool(model.get("compile", False)),
    )
