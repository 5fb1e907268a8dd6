"""Loss terms as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from duda.data.classes import IGNORE_INDEX


def pixel_ce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Per-pixel cross-entropy at label resolution, optionally pixel-weighted.

    As the reference (mmseg `CrossEntropyLoss` with `avg_non_ignore=False`): logits are
    bilinearly upsampled to the label size, and the mean runs over *all* pixels, ignored and
    zero-weight ones included, so a crop with many ignored pixels contributes a smaller loss.
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    loss = F.cross_entropy(
        logits.float(), labels.long(), ignore_index=ignore_index, reduction="none"
    )
    if weight is not None:
        loss = loss * weight
    return loss.mean()
