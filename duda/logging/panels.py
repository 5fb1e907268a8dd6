"""Image panels of the target batch: image, pseudo-label, student prediction, ground truth.

The numbers say how good the pseudo-labels are; a panel shows *where* they are wrong (a class
bleeding into its neighbour, a border the teacher never gets right), which is what one looks
at when a run goes badly. Views are computed on the batch the step just trained on, under
`no_grad`, with the networks in their current state and no training state touched (see
`pseudo_label_view` of the methods), so logging panels does not change the training run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from duda.data.classes import CLASS_NAMES, IGNORE_INDEX
from duda.data.preview import colorize
from duda.data.transforms import denormalize

# Label maps of a panel, left to right after the image; each is also a W&B mask layer.
LABEL_VIEWS = ("pseudo_label", "prediction", "ground_truth")
CLASS_LABELS = {i: name for i, name in enumerate(CLASS_NAMES)} | {IGNORE_INDEX: "ignore"}


def _numpy(labels: torch.Tensor) -> np.ndarray:
    return labels.to(torch.uint8).cpu().numpy()


@torch.no_grad()
def target_views(method: Any, target: dict[str, Any], it: int, count: int) -> dict[str, np.ndarray]:
    """`image` (N×H×W×3 uint8) and the label maps of LABEL_VIEWS that exist (N×H×W uint8,
    255 = ignore) for the first `count` crops; `it` is the 0-based index of the step just
    taken (it decides DUDA's stage)."""
    batch = {k: v[:count] for k, v in target.items() if isinstance(v, torch.Tensor)}
    image = batch["image"]
    model = method.eval_model()
    was_training = model.training
    model.eval()
    prediction = model.predict(image).argmax(1)
    model.train(was_training)
    views = {
        "image": denormalize(image).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    }
    pseudo = method.pseudo_label_view(batch, it)
    if pseudo is not None:
        if "valid" in batch:  # border pixels the pseudo-label loss ignores
            pseudo = pseudo.masked_fill(batch["valid"] == 0, IGNORE_INDEX)
        views["pseudo_label"] = _numpy(pseudo)
    views["prediction"] = _numpy(prediction)
    if "label" in batch:
        views["ground_truth"] = _numpy(batch["label"])
    return views


def panel(views: dict[str, np.ndarray], gap: int = 2) -> np.ndarray:
    """One row per crop: image | pseudo-label | prediction | ground truth, labels in the
    Cityscapes palette (ignore black), tiles `gap` white pixels apart."""
    rows = []
    for i, image in enumerate(views["image"]):
        tiles = [image] + [colorize(views[k][i]) for k in LABEL_VIEWS if k in views]
        h = image.shape[0]
        spacer = np.full((h, gap, 3), 255, np.uint8)
        row = [t for tile in tiles for t in (tile, spacer)][:-1]
        rows.append(np.concatenate(row, axis=1))
        rows.append(np.full((gap, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)
