"""Segmentation metrics from a confusion matrix, as the Cityscapes/mmseg protocol defines them.

Intersections and unions are summed over the whole split before dividing (not averaged per
image), pixels labelled 255 are ignored, and a class whose union is empty (absent from labels
and predictions) gets IoU NaN and is left out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from duda.data.classes import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates a C×C matrix, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and label {tuple(target.shape)} differ"
            )
        valid = target != self.ignore_index
        t = target[valid].long().cpu()
        p = pred[valid].long().cpu()
        if t.numel() and int(t.max()) >= self.num_classes:
            raise ValueError(
                f"label value {int(t.max())} outside 0..{self.num_classes - 1} and not "
                f"{self.ignore_index}"
            )
        idx = t * self.num_classes + p
        self.matrix += torch.bincount(idx, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes
        )


def iou_per_class(matrix: torch.Tensor) -> torch.Tensor:
    matrix = matrix.double()
    intersection = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.nan)


def mean_iou(iou: torch.Tensor, subset: Sequence[int] | None = None) -> float:
    """NaN-mean over the classes (or a class subset, e.g. SYNTHIA's 16 or 13)."""
    values = iou if subset is None else iou[list(subset)]
    return float(values.nanmean()) if not torch.isnan(values).all() else float("nan")


def pixel_accuracy(matrix: torch.Tensor) -> float:
    total = matrix.sum()
    return float(matrix.diag().sum() / total) if total > 0 else float("nan")


def summarize(matrix: torch.Tensor, class_names: Sequence[str]) -> dict:
    """The figures every evaluation reports, in percent as papers quote them."""
    iou = iou_per_class(matrix)
    return {
        "mIoU": 100 * mean_iou(iou),
        "aAcc": 100 * pixel_accuracy(matrix),
        "iou": {name: 100 * float(v) for name, v in zip(class_names, iou, strict=True)},
    }


def format_table(summary: dict, title: str = "") -> str:
    """A plain-text per-class table for logs and the end of a run."""
    rows = [title] if title else []
    width = max(len(n) for n in summary["iou"])
    rows.append(f"{'class'.ljust(width)}   IoU")
    rows.append("-" * (width + 8))
    for name, value in summary["iou"].items():
        shown = "  n/a" if value != value else f"{value:5.1f}"
        rows.append(f"{name.ljust(width)} {shown}")
    rows.append("-" * (width + 8))
    rows.append(f"{'mIoU'.ljust(width)} {summary['mIoU']:5.1f}")
    rows.append(f"{'aAcc'.ljust(width)} {summary['aAcc']:5.1f}")
    return "\n".join(rows)
