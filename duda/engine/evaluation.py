"""Evaluate a segmentor on a labelled split: confusion matrix over the split -> IoU table."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from duda.engine.inference import predict_slide, predict_whole
from duda.engine.metrics import ConfusionMatrix, summarize


@dataclass
class EvalSettings:
    mode: str = "whole"  # whole | slide
    window_hw: Sequence[int] = (512, 512)
    stride_hw: Sequence[int] | None = None  # None: half the window
    max_images: int | None = None
    autocast_dtype: torch.dtype | None = None
    progress: bool = True
    # class-subset means to report (`dataset.metrics`); the first is `mIoU`. None: all classes
    metrics: Sequence[str] | None = ("mIoU19",)


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    class_names: Sequence[str],
    device: torch.device,
    settings: EvalSettings,
) -> dict:
    """Returns {"mIoU", <each of settings.metrics>, "aAcc", "iou": {class: IoU}, "images",
    "skipped"} with IoU in percent; `skipped` counts unusable files left out of the split."""
    was_training = model.training
    model.eval()
    num_classes = len(class_names)
    cm = ConfusionMatrix(num_classes)
    stride = settings.stride_hw or [max(1, s // 2) for s in settings.window_hw]
    amp = (
        torch.autocast(device.type, dtype=settings.autocast_dtype)
        if settings.autocast_dtype
        else nullcontext()
    )
    seen = bad = 0
    total = len(loader.dataset)
    if settings.max_images is not None:
        total = min(total, settings.max_images)
    bar = tqdm(total=total, desc="eval", leave=False, disable=not settings.progress, unit="img")
    for batch in loader:
        if seen >= total:
            break
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        out_hw = labels.shape[-2:]
        with amp:
            if settings.mode == "slide":
                logits = predict_slide(
                    model.predict, images, num_classes, settings.window_hw, stride, out_hw
                )
            else:
                logits = predict_whole(model.predict, images, out_hw)
        cm.update(logits.argmax(1), labels)  # a bad file's item is all-ignore: adds nothing
        seen += images.shape[0]
        if "bad" in batch:
            bad += int(batch["bad"].sum())
        bar.update(images.shape[0])
    bar.close()
    model.train(was_training)
    metrics = settings.metrics if num_classes == 19 else None
    result = summarize(cm.matrix, class_names, metrics)
    result["images"] = seen - bad
    result["skipped"] = int(getattr(loader.dataset, "skipped_count", 0))
    return result
