"""Albumentations pipelines for source and target crops, and for evaluation.

Train: keep-ratio resize (mmseg `keep_ratio=True` semantics), pad to the crop size, random crop
that re-draws while one class dominates (`cat_max_ratio`, as mmseg's `RandomCrop`), horizontal
flip, ImageNet normalisation. Evaluation: the same resize and normalisation only; the metric is
computed against the label at its file resolution.

Training samples also carry `valid`, a uint8 mask of the crop that says where a pseudo-label may
be trusted (1) or not (0): the image borders given by `pseudo_margins` (Cityscapes rectification
artefacts, reference sheet §4 "v2") and any padding. It is built at file resolution, before the
resize, and goes through the same geometric steps as the image, so it lines up with it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.augmentations.crops.transforms import BaseCrop

from duda.data.classes import IGNORE_INDEX

# ImageNet statistics on the 0-255 scale, as every reference config uses.
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


class CatMaxRatioCrop(BaseCrop):
    """Random crop, re-drawn up to `max_tries` times while one class covers ≥ `cat_max_ratio`.

    Why: source frames are dominated by road and sky; crops of only those teach little. Ratio 1
    disables the check (a plain random crop).
    """

    def __init__(
        self,
        height: int,
        width: int,
        cat_max_ratio: float = 0.75,
        ignore_index: int = IGNORE_INDEX,
        max_tries: int = 10,
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.height, self.width = height, width
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index
        self.max_tries = max_tries

    def _draw(self, image_h: int, image_w: int) -> tuple[int, int, int, int]:
        y0 = self.py_random.randint(0, image_h - self.height)
        x0 = self.py_random.randint(0, image_w - self.width)
        return x0, y0, x0 + self.width, y0 + self.height

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        image_h, image_w = params["shape"][:2]
        if self.height > image_h or self.width > image_w:
            raise ValueError(
                f"crop {self.height}x{self.width} is larger than the image {image_h}x{image_w}; "
                "pad first (build_train_transform does)"
            )
        coords = self._draw(image_h, image_w)
        mask = data.get("mask")
        if mask is None or self.cat_max_ratio >= 1.0:
            return {"crop_coords": coords}
        for _ in range(self.max_tries):
            x0, y0, x1, y1 = coords
            crop = mask[y0:y1, x0:x1]
            counts = np.bincount(crop[crop != self.ignore_index].ravel(), minlength=1)
            if len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                break
            coords = self._draw(image_h, image_w)
        return {"crop_coords": coords}


def _to_tensors(image: np.ndarray, label: np.ndarray | None) -> dict[str, torch.Tensor]:
    out = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))}
    if label is not None:
        out["label"] = torch.from_numpy(np.ascontiguousarray(label)).long()
    return out


def check_margins(margins: Sequence[int] | None) -> tuple[int, int, int, int] | None:
    """Validate `[top, bottom, left, right]` pseudo-label margins (pixels at file resolution)."""
    if margins is None:
        return None
    values = tuple(margins)
    if len(values) != 4 or not all(isinstance(v, int) and v >= 0 for v in values):
        raise ValueError(
            f"pseudo_margins must be [top, bottom, left, right], four pixel counts >= 0 at the "
            f"image file's resolution (e.g. [30, 240, 30, 30] for Cityscapes), got {list(values)}"
        )
    return values  # type: ignore[return-value]


def border_invalid_mask(height: int, width: int, margins: Sequence[int] | None) -> np.ndarray:
    """uint8 HxW, 1 inside the border margins, 0 elsewhere.

    Why inverted ("invalid", not "valid"): padding fills every mask target with the label's
    ignore value (255), which is non-zero, so padded pixels come out invalid for free.
    """
    invalid = np.zeros((height, width), np.uint8)
    if margins is None:
        return invalid
    top, bottom, left, right = margins
    invalid[:top] = 1
    invalid[max(height - bottom, 0) :] = 1  # bottom = 0 gives the empty slice [height:]
    invalid[:, :left] = 1
    invalid[:, max(width - right, 0) :] = 1
    return invalid


class SegTransform:
    """Callable wrapper: (RGB uint8 image, train-ID label or None) -> normalised CHW tensors.

    With `with_valid`, the output also holds `valid` (uint8 HxW of the output crop): the
    pseudo-label border mask of the module docstring, built from `margins`.
    """

    def __init__(
        self,
        compose: A.Compose,
        label_follows: bool = True,
        with_valid: bool = False,
        margins: Sequence[int] | None = None,
    ):
        self.compose = compose
        self.label_follows = label_follows  # False: the label keeps its file resolution
        self.with_valid = with_valid
        self.margins = check_margins(margins)

    def set_seed(self, seed: int) -> None:
        """Give each DataLoader worker its own augmentation stream (called from worker_init_fn)."""
        self.compose.set_random_seed(seed)

    def __call__(self, image: np.ndarray, label: np.ndarray | None) -> dict[str, torch.Tensor]:
        targets: dict[str, np.ndarray] = {"image": image}
        if label is not None and self.label_follows:
            targets["mask"] = label
        if self.with_valid:
            targets["valid"] = border_invalid_mask(*image.shape[:2], self.margins)
        out = self.compose(**targets)
        result = _to_tensors(out["image"], out["mask"] if "mask" in targets else label)
        if self.with_valid:
            valid = (out["valid"] == 0).astype(np.uint8)
            result["valid"] = torch.from_numpy(np.ascontiguousarray(valid))
        return result


def _resize(resize_hw: Sequence[int] | None) -> list[A.BasicTransform]:
    if resize_hw is None:
        return []
    # Fit inside H x W keeping the aspect ratio, up- or down-scaling: mmseg's keep_ratio resize.
    return [A.LongestMaxSize(max_size_hw=tuple(resize_hw), interpolation=cv2.INTER_LINEAR)]


def _normalize() -> A.Normalize:
    return A.Normalize(mean=MEAN, std=STD, max_pixel_value=1.0)


def build_train_transform(
    crop_hw: Sequence[int],
    resize_hw: Sequence[int] | None = None,
    cat_max_ratio: float = 1.0,
    flip_p: float = 0.5,
    seed: int | None = None,
    pseudo_margins: Sequence[int] | None = None,
) -> SegTransform:
    """Training crops; every sample carries `valid` (all ones but padding when margins are None)."""
    crop_h, crop_w = crop_hw
    steps = _resize(resize_hw) + [
        A.PadIfNeeded(
            min_height=crop_h,
            min_width=crop_w,
            position="top_left",
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=IGNORE_INDEX,
        ),
        CatMaxRatioCrop(crop_h, crop_w, cat_max_ratio=cat_max_ratio),
        A.HorizontalFlip(p=flip_p),
        _normalize(),
    ]
    compose = A.Compose(steps, additional_targets={"valid": "mask"}, seed=seed)
    return SegTransform(compose, with_valid=True, margins=pseudo_margins)


def build_eval_transform(resize_hw: Sequence[int] | None = None) -> SegTransform:
    """Resize the image only; the label keeps its file resolution for the metric."""
    return SegTransform(A.Compose(_resize(resize_hw) + [_normalize()]), label_follows=False)


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Normalised CHW/NCHW float tensor back to 0-255 RGB floats (for logging images)."""
    mean = torch.tensor(MEAN, device=image.device).view(-1, 1, 1)
    std = torch.tensor(STD, device=image.device).view(-1, 1, 1)
    return image * std + mean
