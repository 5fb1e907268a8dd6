"""Tiny datasets in each owner's on-disk layout and label encoding, for prepare/loader tests.

Every label holds vertical bands of stored IDs (`BAND` pixels wide, the full height), so the
expected train IDs and pixel counts can be written down by hand in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from conftest import write_png

H = 8  # label height; every band is H x BAND pixels
BAND = 4


def bands(ids: Sequence[int], dtype=np.uint8) -> np.ndarray:
    """H x (BAND * len(ids)) label whose band i holds ids[i]."""
    return np.repeat(np.asarray(ids, dtype=dtype), BAND)[None, :].repeat(H, axis=0)


def write_gta_label(path: Path, array: np.ndarray) -> None:
    """A palette PNG of label IDs as GTA5 ships them (indices kept exactly as given)."""
    write_png(path, array, palette=True)


def _image(path: Path, h: int, w: int, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    write_png(path, rgb)


def make_gta(root: Path, labels: Sequence[np.ndarray]) -> list[Path]:
    """images/00001.png ... and labels/00001.png ... as palette PNGs of Cityscapes label IDs."""
    out = []
    for i, label in enumerate(labels, 1):
        _image(root / "images" / f"{i:05d}.png", *label.shape, seed=i)
        out.append(root / "labels" / f"{i:05d}.png")
        write_png(out[-1], label, palette=True)
    return out


def synthia_label(classes: np.ndarray, seed: int = 0) -> np.ndarray:
    """SYNTHIA's GT/LABELS encoding as OpenCV reads it: uint16 HxWx3, the class in the last
    channel (the file's first, red), an instance ID in the middle one, zeros in the first."""
    rng = np.random.default_rng(seed)
    raw = np.zeros((*classes.shape, 3), np.uint16)
    raw[:, :, 2] = classes
    raw[:, :, 1] = rng.integers(0, 4000, classes.shape)  # instance IDs: must be ignored
    return raw


def make_synthia(root: Path, labels: Sequence[np.ndarray]) -> list[Path]:
    """RGB/0000000.png ... and GT/LABELS/0000000.png ... (16-bit, 3 channels)."""
    out = []
    for i, classes in enumerate(labels):
        _image(root / "RGB" / f"{i:07d}.png", *classes.shape, seed=100 + i)
        out.append(root / "GT" / "LABELS" / f"{i:07d}.png")
        out[-1].parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(out[-1]), synthia_label(classes, seed=i))
    return out


def make_cityscapes(
    root: Path, labels: dict[str, Sequence[np.ndarray]], city: str = "aachen"
) -> list[Path]:
    """leftImg8bit/<split>/<city>/..._leftImg8bit.png and gtFine/.../..._gtFine_labelIds.png."""
    out = []
    for split, split_labels in labels.items():
        for i, label in enumerate(split_labels):
            stem = f"{city}_{i:06d}_000019"
            _image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", *label.shape, i)
            out.append(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
            write_png(out[-1], label)
    return out


def make_acdc(
    root: Path, labels: dict[tuple[str, str], Sequence[np.ndarray]], test: int = 0
) -> list[Path]:
    """rgb_anon/<cond>/<split>/<seq>/..._rgb_anon.png + gt/.../..._gt_labelTrainIds.png; `test`
    unlabelled images per condition in rgb_anon/<cond>/test."""
    out = []
    for (cond, split), split_labels in labels.items():
        seq = f"GOPR{ord(cond[0]) * 10 + len(split):04d}"  # unique per condition and split
        for i, label in enumerate(split_labels):
            stem = f"{seq}_frame_{i:06d}"
            _image(root / "rgb_anon" / cond / split / seq / f"{stem}_rgb_anon.png", *label.shape, i)
            out.append(root / "gt" / cond / split / seq / f"{stem}_gt_labelTrainIds.png")
            write_png(out[-1], label)
    for cond in sorted({c for c, _ in labels}):
        for i in range(test):
            seq = f"GOPR9{cond[0].upper()}{len(cond)}"
            name = f"{seq}_frame_{i:06d}_rgb_anon.png"
            _image(root / "rgb_anon" / cond / "test" / seq / name, H, 24, i)
    return out


def make_darkzurich(root: Path, val: Sequence[np.ndarray], train: int = 2, test: int = 2) -> None:
    """rgb_anon/{train,val,test}/night/<seq>/..._rgb_anon.png; gt/val/night/<seq>/..."""
    seq = "GOPR0356"
    for i, label in enumerate(val):
        stem = f"{seq}_frame_{i:06d}"
        _image(root / "rgb_anon/val/night" / seq / f"{stem}_rgb_anon.png", *label.shape, i)
        write_png(root / "gt/val/night" / seq / f"{stem}_gt_labelTrainIds.png", label)
    for split, count in (("train", train), ("test", test)):
        for i in range(count):
            name = f"GOPR0{i}{len(split)}_frame_{i:06d}_rgb_anon.png"
            _image(root / "rgb_anon" / split / "night" / "GOPR0001" / name, H, 24, i)
    _image(root / "rgb_anon/train/day/GOPR0002/GOPR0002_frame_000000_rgb_anon.png", H, 24, 9)
