"""Encoder-decoder segmentation network shared by teacher and student models."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Segmentor"]


class Segmentor(nn.Module):
    """Backbone + decode head.

    ``forward`` stops at the decoder's own resolution (stride 4 for SegFormer/DAFormer, the
    last stage's, 8 on a dilated ResNet, for DeepLabV2) because callers decide how to
    upsample: losses resize to the label by shape. ``predict`` gives input-size logits.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone pyramid alone, e.g. for feature-distance regularisation."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits resized to the input's spatial size."""
        logits = self(x)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def param_groups(
        self, lr: float, weight_decay: float, head_lr_mult: float = 10.0
    ) -> list[dict[str, Any]]:
        """AdamW groups: a faster-learning randomly initialised head, no decay on 1-D params.

        Decaying norm scales and biases only pulls them towards zero without regularising
        capacity, so every parameter with ``ndim <= 1`` is exempt. Frozen parameters are
        left out. Empty groups are dropped; ``name`` helps when logging learning rates.
        """
        groups: list[dict[str, Any]] = []
        for part, part_lr in (("backbone", lr), ("head", lr * head_lr_mult)):
            params = [p for p in getattr(self, part).parameters() if p.requires_grad]
            decay = [p for p in params if p.ndim > 1]
            no_decay = [p for p in params if p.ndim <= 1]
            for suffix, ps, wd in (("", decay, weight_decay), ("_no_decay", no_decay, 0.0)):
                if ps:
                    groups.append(
                        {"name": part + suffix, "params": ps, "lr": part_lr, "weight_decay": wd}
                    )
        return groups
