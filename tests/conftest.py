"""Shared test setup: offline, quiet, CPU, and small on-disk dataset fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def write_png(path: Path, array: np.ndarray, palette: bool = False) -> None:
    """Write a PNG; `palette=True` stores a 2-D array as palette indices, as GTA5 labels are."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        im = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
        # Colours unrelated to the indices: readers must use the indices, not the colours.
        im.putpalette([v for i in range(256) for v in (255 - i, (7 * i) % 256, i)])
    else:
        im = Image.fromarray(array)
    im.save(path)


@pytest.fixture
def tiny_layouts(tmp_path: Path) -> Path:
    """A 3-image GTA5 layout and a Cityscapes layout (2 train, 2 val) with known label IDs.

    Each label is split into vertical bands: label IDs 7 (road), 26 (car), 0 (unlabelled), 33
    (bicycle), so the expected train IDs are 0, 13, 255, 18 band by band.
    """
    rng = np.random.default_rng(0)
    h, w = 48, 64
    label = np.zeros((h, w), np.uint8)
    for i, lab in enumerate((7, 26, 0, 33)):
        label[:, i * 16 : (i + 1) * 16] = lab
    for n in range(1, 4):
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        write_png(tmp_path / "gta/images" / f"{n:05d}.png", image)
        write_png(tmp_path / "gta/labels" / f"{n:05d}.png", label, palette=True)
    for split, city in (("train", "alpha"), ("val", "beta")):
        for frame in range(2):
            stem = f"{city}_000000_{frame:06d}"
            image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            write_png(
                tmp_path / f"cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png", image
            )
            write_png(
                tmp_path / f"cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png", label
            )
    return tmp_path
