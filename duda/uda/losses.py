"""Loss terms as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from duda.data.classes import IGNORE_INDEX


def resize_logits(logits: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Logits bilinearly resized to `size` (align_corners=False, as mmseg's decode heads), or
    returned as they are when already that size: every loss compares at label resolution."""
    if logits.shape[-2:] == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def pixel_ce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    *,
    class_weight: torch.Tensor | None = None,
    avg_non_ignore: bool = False,
) -> torch.Tensor:
    """Per-pixel cross-entropy at label resolution, optionally pixel- and class-weighted.

    As the reference (mmseg `CrossEntropyLoss` with `avg_non_ignore=False`): logits are
    bilinearly upsampled to the label size, and the mean runs over *all* pixels, ignored and
    zero-weight ones included, so a crop with many ignored pixels contributes a smaller loss.
    `class_weight` (C,) scales each pixel's loss by the weight of its label class (constants:
    no gradient flows into them). `avg_non_ignore=True` divides by the number of non-ignored
    pixels instead (mmseg's option of that name); DUDA's inconsistency loss uses it.
    """
    logits = resize_logits(logits, labels.shape[-2:])
    if class_weight is not None:
        class_weight = class_weight.detach().to(device=logits.device, dtype=torch.float32)
    loss = F.cross_entropy(
        logits.float(),
        labels.long(),
        weight=class_weight,
        ignore_index=ignore_index,
        reduction="none",
    )
    if weight is not None:
        loss = loss * weight
    if avg_non_ignore:
        return loss.sum() / (labels != ignore_index).sum().clamp(min=1)
    return loss.mean()
