"""Segmentation metrics from a confusion matrix, as the Cityscapes/mmseg protocol defines them.

Intersections and unions are summed over the whole split before dividing (not averaged per
image), pixels labelled 255 are ignored, and a class whose union is empty (absent from labels
and predictions) gets IoU NaN and is left out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from duda.data.classes import CLASS_SUBSETS, IGNORE_INDEX


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


def subset_means(iou: torch.Tensor, metrics: Sequence[str]) -> dict[str, float]:
    """Each named class-subset mean (`mIoU19`, `mIoU16`, `mIoU13`), in percent.

    Computed over the subset's own classes, so mIoU16 is not mIoU19 * 19/16: the two agree only
    when the three dropped classes score exactly 0.
    """
    out = {}
    for name in metrics:
        name = getattr(name, "value", name)
        if name not in CLASS_SUBSETS:
            raise ValueError(f"unknown metric {name!r}; expected one of {sorted(CLASS_SUBSETS)}")
        subset = CLASS_SUBSETS[name]
        if max(subset) >= len(iou):
            raise ValueError(f"{name} needs {max(subset) + 1} classes, the matrix has {len(iou)}")
        out[name] = 100 * mean_iou(iou, subset)
    return out


def summarize(
    matrix: torch.Tensor, class_names: Sequence[str], metrics: Sequence[str] | None = None
) -> dict:
    """The figures every evaluation reports, in percent as papers quote them.

    `mIoU` is the mean over all classes, or, when `metrics` names class subsets, the first of
    them (the headline figure of the benchmark), and each named subset gets its own key.
    """
    iou = iou_per_class(matrix)
    subsets = subset_means(iou, metrics) if metrics else {}
    out = {
        "mIoU": next(iter(subsets.values())) if subsets else 100 * mean_iou(iou),
        **subsets,
        "aAcc": 100 * pixel_accuracy(matrix),
        "iou": {name: 100 * float(v) for name, v in zip(class_names, iou, strict=True)},
    }
    if subsets:
        out["metrics"] = list(subsets)
    return out


def format_table(summary: dict, title: str = "") -> str:
    """A plain-text per-class table for logs and the end of a run, with every subset mean."""
    rows = [title] if title else []
    width = max(max(len(n) for n in summary["iou"]), 6)
    rows.append(f"{'class'.ljust(width)}   IoU")
    rows.append("-" * (width + 8))
    for name, value in summary["iou"].items():
        shown = "  n/a" if value != value else f"{value:5.1f}"
        rows.append(f"{name.ljust(width)} {shown}")
    rows.append("-" * (width + 8))
    means = summary.get("metrics") or [k for k in CLASS_SUBSETS if k in summary] or ["mIoU"]
    for key in means:
        value = summary[key]
        shown = "  n/a" if value != value else f"{value:5.1f}"
        rows.append(f"{key.ljust(width)} {shown}")
    rows.append(f"{'aAcc'.ljust(width)} {summary['aAcc']:5.1f}")
    return "\n".join(rows)
