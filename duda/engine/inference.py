"""Whole-image and sliding-window inference, returning logits at the label's resolution."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Predictor = Callable[[torch.Tensor], torch.Tensor]  # images -> logits at input size


def predict_whole(predict: Predictor, images: torch.Tensor, out_hw: Sequence[int]) -> torch.Tensor:
    """One pass over the (already resized) image, logits resized to the label size (DAFormer)."""
    logits = predict(images)
    return F.interpolate(logits, size=tuple(out_hw), mode="bilinear", align_corners=False)


def _starts(size: int, window: int, stride: int) -> list[int]:
    if size <= window:
        return [0]
    starts = list(range(0, size - window, stride)) + [size - window]
    return sorted(set(starts))


def predict_slide(
    predict: Predictor,
    images: torch.Tensor,
    num_classes: int,
    window_hw: Sequence[int],
    stride_hw: Sequence[int],
    out_hw: Sequence[int],
) -> torch.Tensor:
    """Overlapping windows whose logits are averaged where they overlap (mmseg `slide`).

    Windows larger than the image shrink to it; the last window in each direction is aligned
    with the border so every pixel is covered.
    """
    n, _, h, w = images.shape
    wh, ww = min(window_hw[0], h), min(window_hw[1], w)
    sums = images.new_zeros((n, num_classes, h, w))
    counts = images.new_zeros((1, 1, h, w))
    for y in _starts(h, wh, stride_hw[0]):
        for x in _starts(w, ww, stride_hw[1]):
            sums[:, :, y : y + wh, x : x + ww] += predict(images[:, :, y : y + wh, x : x + ww])
            counts[:, :, y : y + wh, x : x + ww] += 1
    logits = sums / counts
    return F.interpolate(logits, size=tuple(out_hw), mode="bilinear", align_corners=False)
