"""Datasets read from the layouts their owners ship (and the synthetic benchmark reproduces).

GTA5:        <root>/images/00001.png, <root>/labels/00001.png (palette PNG of Cityscapes label IDs)
Cityscapes:  <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
             <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png

Labels are mapped to the 19 train IDs on load (a converted `*_labelTrainIds.png` beside the
original is used when present), so the same code reads real and synthetic data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from duda.data.classes import label_to_train_lut

_LUT = label_to_train_lut()


class DatasetLayoutError(FileNotFoundError):
    """A dataset root that is missing or not laid out as expected; the message says what to do."""


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Path | None


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 HxWx3. OpenCV decodes PNG/JPEG faster than PIL."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path} (missing, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label_ids(path: Path) -> np.ndarray:
    """Label IDs as stored. PIL, not OpenCV: GTA5 labels are palette PNGs, and OpenCV would
    return the palette colours instead of the indices."""
    with Image.open(path) as im:
        if im.mode not in ("P", "L", "I;16", "I"):
            raise ValueError(f"label {path} has mode {im.mode}; expected a single-channel PNG")
        return np.asarray(im)


def read_train_ids(path: Path) -> np.ndarray:
    """Train IDs (0-18, 255 ignore), preferring an already converted file beside the original."""
    if path.name.endswith("_labelIds.png"):  # Cityscapes: *_gtFine_labelTrainIds.png
        converted = path.with_name(path.name.replace("_labelIds.png", "_labelTrainIds.png"))
    else:  # GTA5: labels/00001.png -> labels/00001_labelTrainIds.png
        converted = path.with_name(path.stem + "_labelTrainIds.png")
    if converted.exists():
        return read_label_ids(converted).astype(np.uint8)
    ids = read_label_ids(path)
    if ids.max(initial=0) > 255:
        raise ValueError(f"label {path} holds IDs above 255; expected Cityscapes label IDs")
    return _LUT[ids.astype(np.uint8)]


def _layout_error(name: str, root: Path, expected: str, hint: str) -> DatasetLayoutError:
    return DatasetLayoutError(
        f"{name} not found at {root.resolve()}.\n"
        f"Expected layout:\n{expected}\n{hint}\n"
        "Set the data root with DUDA_DATA=/path/to/datasets or paths.data_dir=/path/to/datasets."
    )


GTA_LAYOUT = "  <root>/images/00001.png ...\n  <root>/labels/00001.png ...  (Cityscapes label IDs)"
CITYSCAPES_LAYOUT = (
    "  <root>/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
    "  <root>/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)


def find_gta(root: Path) -> list[Sample]:
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise _layout_error(
            "GTA5",
            root,
            GTA_LAYOUT,
            "Download the images and labels from https://download.visinf.tu-darmstadt.de/data/"
            "from_games/ and unpack all parts into <root>.",
        )
    samples = []
    for image in sorted(images_dir.glob("*.png")):
        label = labels_dir / image.name
        if not label.exists():
            raise DatasetLayoutError(f"GTA5 image {image} has no label {label}")
        samples.append(Sample(image, label))
    if not samples:
        raise _layout_error("GTA5 images", root, GTA_LAYOUT, f"{images_dir} holds no *.png.")
    return samples


def find_cityscapes(root: Path, split: str, with_labels: bool = True) -> list[Sample]:
    images_dir = root / "leftImg8bit" / split
    labels_dir = root / "gtFine" / split
    if not images_dir.is_dir() or (with_labels and not labels_dir.is_dir()):
        raise _layout_error(
            f"Cityscapes split '{split}'",
            root,
            CITYSCAPES_LAYOUT,
            "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
            "https://www.cityscapes-dataset.com/downloads/ and unzip both into <root>.",
        )
    samples = []
    for image in sorted(images_dir.glob("*/*_leftImg8bit.png")):
        label = None
        if with_labels:
            stem = image.name[: -len("_leftImg8bit.png")]
            label = labels_dir / image.parent.name / f"{stem}_gtFine_labelIds.png"
            if not label.exists():
                raise DatasetLayoutError(f"Cityscapes image {image} has no label {label}")
        samples.append(Sample(image, label))
    if not samples:
        raise _layout_error(
            f"Cityscapes images of split '{split}'",
            root,
            CITYSCAPES_LAYOUT,
            f"{images_dir} is empty.",
        )
    return samples


FINDERS: dict[str, Callable[..., list[Sample]]] = {
    "gta": lambda root, split, with_labels=True: find_gta(root),
    "cityscapes": find_cityscapes,
}


class SegmentationDataset(torch.utils.data.Dataset):
    """Samples + a transform. Returns {"image", "label" (if any), "index"}."""

    def __init__(self, samples: list[Sample], transform: Callable, load_labels: bool = True):
        self.samples = samples
        self.transform = transform
        self.load_labels = load_labels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = self.samples[index]
        image = read_image(sample.image)
        label = None
        if self.load_labels and sample.label is not None:
            label = read_train_ids(sample.label)
            if label.shape != image.shape[:2]:
                raise ValueError(
                    f"label {sample.label} is {label.shape[1]}x{label.shape[0]} but image "
                    f"{sample.image} is {image.shape[1]}x{image.shape[0]}"
                )
        out = self.transform(image, label)
        out["index"] = index
        return out


def build_dataset(
    kind: str, root: str | Path, split: str, transform: Callable, load_labels: bool = True
) -> SegmentationDataset:
    if kind not in FINDERS:
        raise ValueError(f"unknown dataset kind '{kind}'; expected one of {sorted(FINDERS)}")
    samples = FINDERS[kind](Path(root), split, with_labels=load_labels)
    return SegmentationDataset(samples, transform, load_labels=load_labels)
