"""Backbone factory: the MiT family and dilated ResNets by name, anything else through timm.

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

__all__ = ["BACKBONES", "DILATED_RESNETS", "TimmBackbone", "build_backbone"]

_NUM_LEVELS = 4


class TimmBackbone(nn.Module):
    """Adapts a timm ``features_only`` model to the project's backbone contract.

    Only the deepest four levels are kept: heads are designed around SegFormer's
    stride 4..32 pyramid, and the stride-2 level of CNNs would multiply decoder cost.
    Channels and strides are read from timm's ``feature_info``, so a dilated network
    reports its real strides (e.g. 4, 8, 8, 8 at output stride 8).
    """

    def __init__(
        self,
        model: nn.Module,
        num_levels: int = _NUM_LEVELS,
        timm_name: str | None = None,
        timm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        info = model.feature_info
        total = len(info.channels())
        self._keep = max(total - num_levels, 0)
        self.channels: list[int] = list(info.channels())[self._keep :]
        self.strides: list[int] = list(info.reduction())[self._keep :]
        fmt = getattr(model, "output_fmt", "NCHW")
        self._channels_last = str(getattr(fmt, "value", fmt)) == "NHWC"
        # How to rebuild the full classification model, to read its checkpoints (see below).
        self._timm_name = timm_name
        self._timm_kwargs = dict(timm_kwargs or {})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = list(self.model(x))[self._keep :]
        if self._channels_last:
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return feats

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's own activation checkpointing (per top-level stage of the feature wrapper).

        timm skips the first and last wrapped module, and BatchNorm running statistics are
        updated twice per step (forward and recomputation), a shorter-memory average.
        """
        # FeatureGetterNet (ViT-style models) wraps the full model, which holds the switch.
        target = self.model if hasattr(self.model, "set_grad_checkpointing") else None
        if target is None and hasattr(getattr(self.model, "model", None), "set_grad_checkpointing"):
            target = self.model.model
        if target is None:
            raise ValueError(
                f"model.grad_checkpointing: timm backbone {self._timm_name!r} "
                f"({type(self.model).__name__}) has no set_grad_checkpointing(); set it to false"
            )
        try:
            target.set_grad_checkpointing(enable)
        except (AssertionError, NotImplementedError) as err:
            raise ValueError(
                f"model.grad_checkpointing: timm backbone {self._timm_name!r} does not support "
                f"activation checkpointing ({err or type(err).__name__}); set it to false"
            ) from err

    def adapt_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename a full timm classification checkpoint to this ``features_only`` module.

        timm only ever loads weights before wrapping a model for features, so a checkpoint file
        holds the classifier (``fc.``, ``head.`` ...) that the wrapper pruned, and some wrappers
        rename modules (nested ``stem.in_conv`` flattened to ``stem_in_conv``; ``model.`` in
        front for ViT-style getters). The full model, built on the meta device (no memory, no
        init cost), says which keys were pruned: those are dropped, everything else must match.
        """
        if self._timm_name is None:
            return state
        import timm

        own = set(self.model.state_dict())

        def rename(key: str) -> str:
            if key in own:
                return key
            for candidate in (key.replace(".", "_", 1), f"model.{key}"):
                if candidate in own:
                    return candidate
            return key

        full_kwargs = {k: v for k, v in self._timm_kwargs.items() if k != "out_indices"}
        with torch.device("meta"):
            full = timm.create_model(self._timm_name, pretrained=False, **full_kwargs)
        pruned = {rename(k) for k in full.state_dict()} - own
        renamed = {rename(k): v for k, v in state.items()}
        return {k: v for k, v in renamed.items() if k not in pruned}


def _build_timm(name: str, drop_path_rate: float, **kwargs: Any) -> TimmBackbone:
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"unknown backbone {name!r}: not one of the project's backbones {sorted(BACKBONES)} "
            "and timm does not know a model by that name either"
        )
    if drop_path_rate:
        kwargs.setdefault("drop_path_rate", drop_path_rate)
    try:
        try:
            model = timm.create_model(name, features_only=True, pretrained=False, **kwargs)
        except TypeError:
            # Some timm architectures have no stochastic depth and reject the argument.
            kwargs.pop("drop_path_rate", None)
            model = timm.create_model(name, features_only=True, pretrained=False, **kwargs)
    except TypeError as err:
        raise ValueError(
            f"timm model {name!r} rejected the backbone options {sorted(kwargs)} "
            f"(model.backbone.*): {err}"
        ) from err
    # A caller who picked levels explicitly gets exactly those.
    explicit = "out_indices" in kwargs
    levels = len(model.feature_info.channels()) if explicit else _NUM_LEVELS
    return TimmBackbone(model, num_levels=levels, timm_name=name, timm_kwargs=kwargs)


def _build_mit(
    name: str, drop_path_rate: float = 0.1, output_stride: int | None = None, **kwargs: Any
) -> nn.Module:
    if output_stride not in (None, 32):
        raise ValueError(
            f"model.backbone.output_stride={output_stride}: {name} has a fixed output stride "
            "of 32 (leave output_stride unset)"
        )
    return build_mit(name, drop_path_rate=drop_path_rate, **kwargs)


def build_dilated_resnet(
    name: str, drop_path_rate: float = 0.0, output_stride: int | None = 8, **kwargs: Any
) -> TimmBackbone:
    """ResNet-18/50/101 "v1c" with dilated last stages, DeepLabV2's encoder (reference §10).

    Variant shipped: the deep stem of mmseg's ``ResNetV1c``, which the reference DeepLabV2
    baselines use (``r101v1c``): three 3x3 convs (32, 32, 64 channels) instead of one 7x7,
    with the plain strided 1x1 projection shortcut. In timm terms it is ``resnet101c``
    (``stem_type="deep", stem_width=32``); not ``resnet101d``, which also average-pools in the
    shortcut, and not plain ``resnet101`` (7x7 stem), so torchvision-style ImageNet files do not
    fit. Files that do: mmseg ``resnetXX_v1c`` (stem keys remapped by ``weights.py``) and timm's
    ``resnet50c``/``resnet101c`` checkpoints.

    At ``output_stride`` 8 timm replaces the strides of layer3/layer4 by dilation 2/4, the
    first block of each dilated stage keeping the previous dilation (mmseg's
    ``contract_dilation=True``). timm supports stochastic depth on ResNets; the reference
    trains without it, hence the default 0.
    """
    return _build_timm(
        name,
        drop_path_rate,
        output_stride=output_stride or 8,
        stem_type="deep",
        stem_width=32,
        **kwargs,
    )


DILATED_RESNETS = ("resnet18", "resnet50", "resnet101")

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    **{name: partial(_build_mit, name) for name in MIT_SETTINGS},
    **{name: partial(build_dilated_resnet, name) for name in DILATED_RESNETS},
}


def build_backbone(
    name: str,
    pretrained: str | Path | None = None,
    drop_path_rate: float = 0.1,
    output_stride: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a backbone by name and optionally load a local checkpoint into it.

    ``pretrained`` is a file path only: weights are never downloaded, so runs are
    reproducible offline and on clusters without internet access. ``output_stride`` None
    keeps the backbone's own default (32; 8 for the dilated ResNets).
    """
    if name in BACKBONES:
        backbone = BACKBONES[name](
            drop_path_rate=drop_path_rate, output_stride=output_stride, **kwargs
        )
    else:
        if output_stride is not None:
            kwargs["output_stride"] = output_stride
        backbone = _build_timm(name, drop_path_rate, **kwargs)
    if pretrained:
        if isinstance(backbone, TimmBackbone):
            load_backbone_weights(backbone.model, pretrained, adapt=backbone.adapt_checkpoint)
        else:
            load_backbone_weights(backbone, pretrained)
    return backbone
