"""ImageNet feature distance (DAFormer): keep the student's deepest features on thing classes
close to those of the frozen ImageNet-initialised backbone.

Synthetic training quickly overwrites the generic ImageNet knowledge about object classes
(cars, people, signs) that transfers well to real images; an L2 pull towards the initial
features on those pixels preserves it. Only meaningful with pretrained weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from duda.data.classes import IGNORE_INDEX

# traffic light, traffic sign, person, rider, car, truck, bus, train, motorcycle, bicycle
THING_CLASSES = (6, 7, 11, 12, 13, 14, 15, 16, 17, 18)


def downscale_label_ratio(
    label: torch.Tensor,
    scale: int,
    min_ratio: float,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """N×H×W label → N×(H/scale)×(W/scale): each block's majority class if it covers at least
    `min_ratio` of the block (ignored pixels count against it), else ignore."""
    n, h, w = label.shape
    if h % scale or w % scale:
        raise ValueError(f"label {h}x{w} is not divisible by the feature stride {scale}")
    one_hot = F.one_hot(
        torch.where(label == ignore_index, num_classes, label).long(), num_classes + 1
    )
    share = F.avg_pool2d(one_hot.permute(0, 3, 1, 2).float(), scale)[:, :num_classes]
    best_share, best = share.max(dim=1)
    return torch.where(best_share >= min_ratio, best, torch.full_like(best, ignore_index))


def feature_distance(
    student: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over masked pixels of ‖f_student − f_reference‖₂ (N×C×h×w features, N×h×w mask).

    An empty mask gives 0 with the graph kept (the reference returns NaN there).
    """
    dist = torch.norm(student.float() - reference.float().detach(), dim=1)
    if mask is None:
        return dist.mean()
    if not mask.any():
        return dist.sum() * 0.0
    return dist[mask].mean()


def thing_mask(
    label: torch.Tensor,
    feature_hw: tuple[int, int],
    classes: tuple[int, ...] = THING_CLASSES,
    min_ratio: float = 0.75,
    num_classes: int = 19,
) -> torch.Tensor:
    """Feature-resolution mask of blocks whose majority (≥ min_ratio) class is a thing."""
    scale = label.shape[-1] // feature_hw[-1]
    small = downscale_label_ratio(label, scale, min_ratio, num_classes)
    return torch.isin(small, torch.tensor(classes, device=label.device))
