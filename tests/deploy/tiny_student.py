"""A tiny MiT-B0 student saved as a run's `model_final.pt`, and an independent way to run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from duda.engine.checkpoint import save_checkpoint
from duda.models import build_segmentor

BACKBONE = {"name": "mit_b0", "pretrained": None, "drop_path_rate": 0.0}
HEAD = {"name": "segformer", "embed_dim": 32, "dropout": 0.0}
# ImageNet statistics on the 0-255 scale, written out here rather than imported
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


def save_tiny_run(path: Path, target_root: Path | str = "/nonexistent", **target: Any) -> Path:
    """A random (seeded) tiny student whose run evaluated `target_root` (a Cityscapes layout)."""
    torch.manual_seed(0)
    model = build_segmentor(BACKBONE, HEAD, 19)
    config = {
        "seed": 0,
        "model": {"backbone": BACKBONE, "head": HEAD},
        "dataset": {
            "name": "tiny",
            "num_classes": 19,
            "metrics": ["mIoU19"],
            "on_bad_sample": "skip",
            "target": {
                "kind": "cityscapes",
                "root": str(target_root),
                "val_split": "val",
                "resize_hw": None,
                "crop_hw": [64, 64],
                "conditions": ["all"],
                **target,
            },
        },
        "trainer": {"eval_mode": "whole", "eval_crop_hw": None, "eval_stride_hw": None},
    }
    state = {"model": model.state_dict(), "config": config, "iteration": 2}
    return save_checkpoint(state, path)


def reference_logits(checkpoint: Path, images: np.ndarray) -> np.ndarray:
    """PyTorch logits of N x H x W x 3 uint8/float RGB images, normalised by hand."""
    state = torch.load(checkpoint, weights_only=True)
    model = build_segmentor(BACKBONE, HEAD, 19)
    model.load_state_dict(state["model"])
    x = (np.asarray(images, np.float32) - MEAN) / STD
    with torch.inference_mode():
        return model.eval().predict(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
