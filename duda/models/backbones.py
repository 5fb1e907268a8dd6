"""Backbone factory: the MiT family by name, anything else through timm.

Every backbone returned here yields a list of NCHW maps and exposes ``channels`` and
``strides``, so decode heads can be sized from the backbone instead of hard-coding widths.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from duda.models.mit import MIT_SETTINGS, build_mit
from duda.models.weights import load_backbone_weights

__all__ = ["BACKBONES", "TimmBackbone", "build_backbone"]

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    name: partial(build_mit, name) for name in MIT_SETTINGS
}

_NUM_LEVELS = 4


class TimmBackbone(nn.Module):
    """Adapts a timm ``features_only`` model to the project's backbone contract.

    Only the deepest four levels are kept: heads are designed around SegFormer's
    stride 4..32 pyramid, and the stride-2 level of CNNs would multiply decoder cost.
    """

    def __init__(self, model: nn.Module, num_levels: int = _NUM_LEVELS) -> None:
        super().__init__()
        self.model = model
        info = model.feature_info
        total = len(info.channels())
        self._keep = max(total - num_levels, 0)
        self.channels: list[int] = list(info.channels())[self._keep :]
        self.strides: list[int] = list(info.reduction())[self._keep :]
        fmt = getattr(model, "output_fmt", "NCHW")
        self._channels_last = str(getattr(fmt, "value", fmt)) == "NHWC"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = list(self.model(x))[self._keep :]
        if self._channels_last:
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return feats


def _build_timm(name: str, drop_path_rate: float, **kwargs: Any) -> TimmBackbone:
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"unknown backbone {name!r}: not one of the MiT backbones {sorted(BACKBONES)} "
            "and timm does not know a model by that name either"
        )
    if drop_path_rate:
        kwargs.setdefault("drop_path_rate", drop_path_rate)
    try:
        model = timm.create_model(name, features_only=True, pretrained=False, **kwargs)
    except TypeError:
        # Some timm architectures have no stochastic depth and reject the argument.
        kwargs.pop("drop_path_rate", None)
        model = timm.create_model(name, features_only=True, pretrained=False, **kwargs)
    # A caller who picked levels explicitly gets exactly those.
    explicit = "out_indices" in kwargs
    levels = len(model.feature_info.channels()) if explicit else _NUM_LEVELS
    return TimmBackbone(model, num_levels=levels)


def build_backbone(
    name: str,
    pretrained: str | Path | None = None,
    drop_path_rate: float = 0.1,
    **kwargs: Any,
) -> nn.Module:
    """Build a backbone by name and optionally load a local checkpoint into it.

    ``pretrained`` is a file path only: weights are never downloaded, so runs are
    reproducible offline and on clusters without internet access.
    """
    if name in BACKBONES:
        backbone = BACKBONES[name](drop_path_rate=drop_path_rate, **kwargs)
        target = backbone
    else:
        backbone = _build_timm(name, drop_path_rate, **kwargs)
        target = backbone.model
    if pretrained:
        load_backbone_weights(target, pretrained)
    return backbone
