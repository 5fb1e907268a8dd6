"""MIC's masked image consistency: block masks that hide most of a target crop.

The student must predict the teacher's pseudo-labels for the whole crop from the ~30% of
blocks it still sees, which forces it to use context (a car's road, a rider's bicycle) rather
than only local texture, the cue that transfers worst across domains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def block_mask(
    n: int, height: int, width: int, block: int, ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """N×1×H×W float keep-mask: a round(H/b)×round(W/b) grid whose cells are kept with
    probability 1 − ratio, upsampled with nearest neighbour to the image size."""
    grid_h, grid_w = max(1, round(height / block)), max(1, round(width / block))
    keep = (torch.rand(n, 1, grid_h, grid_w, generator=generator) > ratio).float()
    return F.interpolate(keep, size=(height, width), mode="nearest")


def mask_images(images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Masked blocks become 0 in the *normalised* image, i.e. the dataset mean colour."""
    return images * keep.to(images.device, images.dtype)
