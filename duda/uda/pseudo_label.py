"""Target pseudo-labels from teacher logits, their confidence weight, and their quality.

As DACS: the pseudo-label is the teacher's argmax; instead of masking uncertain pixels, every
pixel gets the same weight q = share of pixels whose max probability reaches the threshold
(0.968), one number for the whole batch. A confident teacher thus gets a full-strength target
loss, an unsure one a damped one. `per_image=True` computes q per crop instead. The border
validity mask (see `duda/data/transforms.py`) zeroes pixels near the frame edges.
"""

from __future__ import annotations

import torch

from duda.data.classes import IGNORE_INDEX
from duda.uda.losses import resize_logits


def pseudo_label(
    logits: torch.Tensor,
    threshold: float = 0.968,
    per_image: bool = False,
    valid: torch.Tensor | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(labels N×H×W long, weight N×H×W float, confident share scalar) from N×C×h×w logits.

    Logits are upsampled to `size` (the crop size) first, as the reference does.
    """
    if size is not None:
        logits = resize_logits(logits, size)
    probs = torch.softmax(logits.float(), dim=1)
    max_prob, labels = probs.max(dim=1)
    confident = (max_prob >= threshold).float()
    q = confident.flatten(1).mean(1).view(-1, 1, 1) if per_image else confident.mean()
    weight = q * torch.ones_like(max_prob)
    if valid is not None:
        weight = weight * valid.to(weight.dtype)
    return labels, weight, confident.mean()


def confusion(
    pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """C×C confusion counts (rows = ground truth) on the device of the inputs.

    Kept on-device and summed by the trainer over its log window, so measuring pseudo-label
    quality every iteration costs no host synchronisation.
    """
    keep = gt != ignore_index
    idx = gt[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)
