"""Decode heads that turn a backbone's feature pyramid into class logits.

Every head sizes itself from the backbone's ``channels`` so that a lightweight student (e.g.
MiT-B0) and a large teacher share the same head code. SegFormer and DAFormer decode at the
finest level (stride 4); DeepLabV2 classifies the deepest level only (stride 8 on a dilated
ResNet). Callers never assume a stride: losses and ``Segmentor.predict`` resize by shape.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HEADS", "DAFormerHead", "DeepLabV2Head", "SegFormerHead", "build_head"]


class MLPEmbed(nn.Module):
    """Per-pixel linear projection of a feature map (SegFormer's "MLP" layer)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        x = self.proj(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(b, -1, h, w)


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1, groups: int = 1
) -> nn.Sequential:
    """Conv without bias (BN supplies it), as mmcv's ConvModule does with a norm layer."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def sep_conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    """Depthwise (+BN+ReLU) then pointwise (+BN+ReLU), like mmcv's DepthwiseSeparableConvModule."""
    return nn.Sequential(
        conv_bn_relu(in_ch, in_ch, kernel, dilation=dilation, groups=in_ch),
        conv_bn_relu(in_ch, out_ch, 1),
    )


def init_decoder(head: nn.Module, classifier: nn.Conv2d) -> None:
    """mmseg's decoder init: He init for ReLU convs, near-zero classifier for calm early logits."""
    for m in head.modules():
        if isinstance(m, nn.Conv2d) and m is not classifier:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    nn.init.normal_(classifier.weight, std=0.01)
    if classifier.bias is not None:
        nn.init.zeros_(classifier.bias)


class _PyramidEmbedding(nn.Module):
    """Embeds every level to a common width and resamples it to the finest level's size."""

    def __init__(self, in_channels: Sequence[int], embed_dim: int) -> None:
        super().__init__()
        self.embeds = nn.ModuleList(MLPEmbed(c, embed_dim) for c in in_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(feats) != len(self.embeds):
            raise ValueError(f"head expects {len(self.embeds)} feature maps, got {len(feats)}")
        size = feats[0].shape[-2:]
        out = []
        for feat, embed in zip(feats, self.embeds, strict=True):
            x = embed(feat)
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            out.append(x)
        return out


class SegFormerHead(nn.Module):
    """All-MLP decoder of SegFormer: cheap enough that the encoder dominates the cost."""

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        embed_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.embed = _PyramidEmbedding(in_channels, embed_dim)
        self.fuse = conv_bn_relu(embed_dim * len(in_channels), embed_dim, 1)
        # Dropout2d as in mmseg's decode heads: it drops whole channels.
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)
        init_decoder(self, self.classifier)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        # Coarsest first, as the reference implementation concatenates.
        x = self.fuse(torch.cat(self.embed(feats)[::-1], dim=1))
        return self.classifier(self.dropout(x))


class SeparableASPP(nn.Module):
    """Parallel dilated depthwise-separable branches; widens context at stride 4 cheaply."""

    def __init__(self, in_ch: int, out_ch: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            conv_bn_relu(in_ch, out_ch, 1) if d == 1 else sep_conv_bn_relu(in_ch, out_ch, 3, d)
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class DAFormerHead(nn.Module):
    """DAFormer's context-aware fusion decoder (SegFormer embeddings + separable ASPP)."""

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        embed_dim: int = 256,
        dilations: Sequence[int] = (1, 6, 12, 18),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        self.embed = _PyramidEmbedding(in_channels, embed_dim)
        self.aspp = SeparableASPP(embed_dim * len(in_channels), embed_dim, dilations)
        self.bottleneck = sep_conv_bn_relu(embed_dim * len(dilations), embed_dim, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)
        init_decoder(self, self.classifier)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(self.embed(feats), dim=1)
        x = self.bottleneck(self.aspp(x))
        return self.classifier(self.dropout(x))


class DeepLabV2Head(nn.Module):
    """DeepLabV2's ASPP classifier: parallel dilated 3x3 convs straight to logits, summed.

    No normalisation, activation, dropout or hidden width, as in the reference ``DLV2Head``
    (each branch is a biased conv whose weights start at N(0, 0.01)). It reads only the deepest
    backbone level, which a dilated ResNet keeps at stride 8. The published DeepLabV2 uses
    dilations 6/12/18/24; the UDA literature's DeepLabV2 baselines (and DAFormer's ``r101v1c``
    comparisons) use only 6/12, an artefact of AdaptSegNet returning inside its branch loop.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        dilations: Sequence[int] = (6, 12, 18, 24),
    ) -> None:
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise ValueError(
                f"deeplabv2 head: dilations must be positive integers, got {dilations}"
            )
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels[-1], num_classes, 3, padding=d, dilation=d) for d in dilations
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


HEADS: dict[str, Callable[..., nn.Module]] = {
    "segformer": SegFormerHead,
    "daformer": DAFormerHead,
    "deeplabv2": DeepLabV2Head,
}


def build_head(name: str, in_channels: Sequence[int], num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a decode head by name, sized for ``in_channels`` of the chosen backbone."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known heads: {sorted(HEADS)}")
    options = list(inspect.signature(HEADS[name]).parameters)[2:]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(
            f"head {name!r} has no option(s) {unknown} (model.head.*); its options are {options}"
        )
    return HEADS[name](list(in_channels), num_classes, **kwargs)
