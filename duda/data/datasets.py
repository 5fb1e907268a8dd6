"""Datasets read from the layouts their owners ship (and the synthetic benchmark reproduces).

GTA5:        <root>/images/00001.png, <root>/labels/00001.png (palette PNG of Cityscapes label IDs)
SYNTHIA:     <root>/RGB/0000000.png, <root>/GT/LABELS/0000000.png (16-bit, class in one channel)
Cityscapes:  <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
             <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png
ACDC:        <root>/rgb_anon/<condition>/<split>/<seq>/<name>_rgb_anon.png
             <root>/gt/<condition>/<split>/<seq>/<name>_gt_labelTrainIds.png
Dark Zurich: <root>/rgb_anon/<split>/<condition>/<seq>/<name>_rgb_anon.png
             <root>/gt/<split>/<condition>/<seq>/<name>_gt_labelTrainIds.png   (val only)

Labels are turned into the 19 train IDs on load; the `*_labelTrainIds.png` that
`python -m duda.data.prepare` writes beside an original label is used when present, so loading
works before and after preparation. `Sample.label` is always the label *as shipped*.

Bad files (unreadable or truncated, label of the wrong size, values that are not IDs of the
encoding, an image without its label or a label without its image) are reported through a
`BadSamplePolicy`: `error` stops with a message naming the file, `skip` warns, drops the file
and counts it (`SegmentationDataset.skipped_count`) so the run log can say how many were lost.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from duda.data.classes import IGNORE_INDEX, lookup_tables

UNLABELLED_SPLITS = frozenset({"test"})  # no dataset of the five publishes its test labels
ACDC_CONDITIONS = ("fog", "night", "rain", "snow")
DARKZURICH_CONDITIONS = ("night", "twilight", "day")


class DatasetLayoutError(FileNotFoundError):
    """A dataset root that is missing or not laid out as expected; the message says what to do."""


class BadSampleError(ValueError):
    """One image/label file that cannot be used; the message names it and what was expected."""


class BadSampleWarning(UserWarning):
    """A bad file skipped because `dataset.on_bad_sample=skip`."""


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Path | None
    encoding: str = "label_ids"  # label_ids | synthia | train_ids (see classes.lookup_tables)


class BadSamplePolicy:
    """What to do with a bad file: `error` raises, `skip` warns and counts.

    Why one object: finding (orphans) and loading (corrupt files) both meet bad files, and the
    run log needs one number for both.
    """

    def __init__(self, mode: str = "error"):
        mode = getattr(mode, "value", mode)
        if mode not in ("skip", "error"):
            raise ValueError(f"on_bad_sample must be 'skip' or 'error', got {mode!r}")
        self.mode = mode
        self.skipped: list[str] = []  # messages of files dropped while listing the dataset

    def report(self, message: str) -> None:
        if self.mode == "error":
            raise BadSampleError(
                f"{message}\n(set dataset.on_bad_sample=skip to skip such files with a warning)"
            )
        self.skipped.append(message)
        warnings.warn(f"skipping {message}", BadSampleWarning, stacklevel=2)


# --------------------------------------------------------------------------- reading files


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 HxWx3. OpenCV decodes PNG/JPEG faster than PIL."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadSampleError(f"cannot read image {path} (missing, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label_ids(path: Path) -> np.ndarray:
    """Label IDs as stored. PIL, not OpenCV: GTA5 labels are palette PNGs, and OpenCV would
    return the palette colours instead of the indices."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I;16", "I"):
                raise BadSampleError(
                    f"label {path} has mode {im.mode}; expected a single-channel PNG"
                )
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, BadSampleError):
            raise
        raise BadSampleError(f"cannot read label {path} ({err}; truncated or not a PNG)") from err


def read_synthia_ids(path: Path) -> np.ndarray:
    """SYNTHIA class IDs: the last channel of the 16-bit PNG as OpenCV returns it (BGR order),
    which is how the reference converter reads it; PIL cannot open these files."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise BadSampleError(f"cannot read label {path} (missing, truncated or not a PNG)")
    if raw.ndim != 3:
        raise BadSampleError(
            f"label {path} has one channel; expected SYNTHIA's multi-channel 16-bit PNG "
            "(GT/LABELS, class ID in the last channel as read by OpenCV)"
        )
    return raw[:, :, -1]


def converted_label_path(label: Path) -> Path:
    """Where `prepare` writes the train-ID version of an original label (beside it)."""
    if label.name.endswith("_labelTrainIds.png"):
        return label  # ACDC / Dark Zurich ship train IDs
    if label.name.endswith("_labelIds.png"):  # Cityscapes: *_gtFine_labelTrainIds.png
        return label.with_name(label.name.replace("_labelIds.png", "_labelTrainIds.png"))
    return label.with_name(label.stem + "_labelTrainIds.png")  # GTA5/SYNTHIA: 00001.png -> ...


def guess_encoding(label: Path) -> str:
    return "train_ids" if label.name.endswith("_labelTrainIds.png") else "label_ids"


@cache
def _tables(encoding: str) -> tuple[np.ndarray, np.ndarray]:
    return lookup_tables(encoding)


def to_train_ids(ids: np.ndarray, encoding: str, path: Path) -> np.ndarray:
    """Map stored IDs to train IDs; values that are not IDs of `encoding` make the file bad."""
    lut, known = _tables(encoding)
    if ids.size and int(ids.max()) >= len(lut):
        bad = np.unique(ids[ids >= len(lut)])
    else:
        bad = np.unique(ids[~known[ids]]) if ids.size else np.array([])
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:8]) + (" ..." if bad.size > 8 else "")
        raise BadSampleError(f"label {path} holds values {shown}, which are not {_KNOWN[encoding]}")
    return lut[ids]


_KNOWN = {
    "label_ids": "Cityscapes label IDs (0-33)",
    "synthia": "SYNTHIA class IDs (0-22)",
    "train_ids": "train IDs (0-18, 255 ignore)",
}


def read_train_ids(path: Path, encoding: str | None = None) -> np.ndarray:
    """Train IDs (0-18, 255 ignore) of a label as shipped, preferring the converted file."""
    encoding = encoding or guess_encoding(path)
    converted = converted_label_path(path)
    if converted.exists():
        return to_train_ids(read_label_ids(converted), "train_ids", converted)
    if encoding == "synthia":
        return to_train_ids(read_synthia_ids(path), encoding, path)
    return to_train_ids(read_label_ids(path), encoding, path)


def image_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from the file header alone (PIL opens lazily), None if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, SyntaxError, ValueError):
        return None


# --------------------------------------------------------------------------- finding files


def _layout_error(name: str, root: Path, expected: str, hint: str, kind: str) -> DatasetLayoutError:
    return DatasetLayoutError(
        f"{name} not found at {root.resolve()}.\n"
        f"Expected layout:\n{expected}\n{hint}\n"
        f"Then prepare it once: python -m duda.data.prepare {kind} --root {root}\n"
        "Set the data root with DUDA_DATA=/path/to/datasets or paths.data_dir=/path/to/datasets."
    )


GTA_LAYOUT = "  <root>/images/00001.png ...\n  <root>/labels/00001.png ...  (Cityscapes label IDs)"
SYNTHIA_LAYOUT = (
    "  <root>/RGB/0000000.png ...\n"
    "  <root>/GT/LABELS/0000000.png ...  (16-bit PNG, SYNTHIA class ID in one channel)"
)
CITYSCAPES_LAYOUT = (
    "  <root>/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
    "  <root>/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png"
)
ACDC_LAYOUT = (
    "  <root>/rgb_anon/{fog,night,rain,snow}/{train,val,test}/<seq>/<name>_rgb_anon.png\n"
    "  <root>/gt/{fog,night,rain,snow}/{train,val}/<seq>/<name>_gt_labelTrainIds.png"
)
DARKZURICH_LAYOUT = (
    "  <root>/rgb_anon/{train,val,test}/night/<seq>/<name>_rgb_anon.png\n"
    "  <root>/gt/val/night/<seq>/<name>_gt_labelTrainIds.png  (labels exist for val only)"
)

GTA_HINT = (
    "Download the images and labels from https://download.visinf.tu-darmstadt.de/data/"
    "from_games/ and unpack all parts into <root>."
)
SYNTHIA_HINT = (
    "Download SYNTHIA-RAND-CITYSCAPES from https://synthia-dataset.net/downloads/ and point "
    "<root> at its RAND_CITYSCAPES folder."
)
CITYSCAPES_HINT = (
    "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
    "https://www.cityscapes-dataset.com/downloads/ and unzip both into <root>."
)
ACDC_HINT = (
    "Download rgb_anon_trainvaltest.zip and gt_trainval.zip from "
    "https://acdc.vision.ee.ethz.ch/download and unzip both into <root>."
)
DARKZURICH_HINT = (
    "Download Dark_Zurich_train_anon.zip, Dark_Zurich_val_anon.zip and "
    "Dark_Zurich_test_anon_withoutGt.zip from "
    "https://www.trace.ethz.ch/publications/2019/GCMA_UIoU/ and unzip them into <root>."
)


def _pair(
    images: dict[str, Path],
    labels: dict[str, Path],
    dataset: str,
    policy: BadSamplePolicy,
    encoding: str,
) -> list[Sample]:
    """Match images and labels by key; every orphan on either side is reported."""
    for key in sorted(labels.keys() - images.keys()):
        policy.report(f"{dataset} label {labels[key]} has no image (expected one for key {key})")
    samples = []
    for key in sorted(images):
        if key not in labels:
            policy.report(f"{dataset} image {images[key]} has no label")
            continue
        samples.append(Sample(images[key], labels[key], encoding))
    return samples


def _strip(path: Path, suffix: str) -> str:
    return path.name[: -len(suffix)]


def _conditions(requested: Iterable[str], valid: Sequence[str], dataset: str) -> list[str]:
    requested = [getattr(c, "value", c) for c in requested]
    if not requested:
        raise ValueError(f"{dataset}: conditions is empty; use [all] or some of {list(valid)}")
    if "all" in requested:
        return list(valid)
    unknown = [c for c in requested if c not in valid]
    if unknown:
        raise ValueError(
            f"{dataset}: unknown condition(s) {unknown}; expected all or {list(valid)}"
        )
    return list(requested)


def _find_flat(
    root: Path,
    images_sub: str,
    labels_sub: str,
    name: str,
    kind: str,
    layout: str,
    hint: str,
    encoding: str,
    with_labels: bool,
    policy: BadSamplePolicy | None,
) -> list[Sample]:
    """A source set without splits: every image of `images_sub` paired by file stem with the
    original label of `labels_sub` (converted `*_labelTrainIds.png` files beside them skipped)."""
    root, policy = Path(root), policy or BadSamplePolicy()
    images_dir, labels_dir = root / images_sub, root / labels_sub
    if not images_dir.is_dir() or (with_labels and not labels_dir.is_dir()):
        raise _layout_error(name, root, layout, hint, kind)
    images = {p.stem: p for p in images_dir.glob("*.png")}
    if not images:
        raise _layout_error(f"{name} images", root, layout, f"{images_dir} holds no *.png.", kind)
    if not with_labels:
        return [Sample(images[k], None, encoding) for k in sorted(images)]
    labels = {
        p.stem: p for p in labels_dir.glob("*.png") if not p.name.endswith("_labelTrainIds.png")
    }
    return _pair(images, labels, name, policy, encoding)


def find_gta(
    root: Path,
    split: str = "train",
    with_labels: bool = True,
    conditions: Iterable[str] = ("all",),
    policy: BadSamplePolicy | None = None,
) -> list[Sample]:
    """All of GTA5 (it has no splits: the whole set is the source training set)."""
    return _find_flat(
        root, "images", "labels", "GTA5", "gta", GTA_LAYOUT, GTA_HINT, "label_ids",
        with_labels, policy,
    )  # fmt: skip


def find_synthia(
    root: Path,
    split: str = "train",
    with_labels: bool = True,
    conditions: Iterable[str] = ("all",),
    policy: BadSamplePolicy | None = None,
) -> list[Sample]:
    """All of SYNTHIA-RAND-CITYSCAPES (no splits; a source training set only)."""
    return _find_flat(
        root, "RGB", "GT/LABELS", "SYNTHIA", "synthia", SYNTHIA_LAYOUT, SYNTHIA_HINT, "synthia",
        with_labels, policy,
    )  # fmt: skip


def find_cityscapes(
    root: Path,
    split: str,
    with_labels: bool = True,
    conditions: Iterable[str] = ("all",),
    policy: BadSamplePolicy | None = None,
) -> list[Sample]:
    root, policy = Path(root), policy or BadSamplePolicy()
    images_dir = root / "leftImg8bit" / split
    labels_dir = root / "gtFine" / split
    if not images_dir.is_dir() or (with_labels and not labels_dir.is_dir()):
        raise _layout_error(
            f"Cityscapes split '{split}'", root, CITYSCAPES_LAYOUT, CITYSCAPES_HINT, "cityscapes"
        )
    images = {
        f"{p.parent.name}/{_strip(p, '_leftImg8bit.png')}": p
        for p in images_dir.glob("*/*_leftImg8bit.png")
    }
    if not images:
        raise _layout_error(
            f"Cityscapes images of split '{split}'",
            root,
            CITYSCAPES_LAYOUT,
            f"{images_dir} is empty.",
            "cityscapes",
        )
    if not with_labels:
        return [Sample(images[k], None) for k in sorted(images)]
    labels = {
        f"{p.parent.name}/{_strip(p, '_gtFine_labelIds.png')}": p
        for p in labels_dir.glob("*/*_gtFine_labelIds.png")
    }
    return _pair(images, labels, "Cityscapes", policy, "label_ids")


def _find_anon(
    root: Path,
    image_dirs: list[Path],
    label_dirs: list[Path],
    with_labels: bool,
    name: str,
    layout: str,
    hint: str,
    kind: str,
    policy: BadSamplePolicy,
) -> list[Sample]:
    """ACDC and Dark Zurich: `<seq>/<name>_rgb_anon.png` images, `_gt_labelTrainIds.png` labels."""
    for d in image_dirs + (label_dirs if with_labels else []):
        if not d.is_dir():
            raise _layout_error(name, root, layout, f"Missing folder {d}.\n{hint}", kind)
    # key: <condition>/<split>/<seq>/<frame> (ACDC) or <split>/<condition>/<seq>/<frame> (DZ)
    images = {
        f"{p.parent.relative_to(root / 'rgb_anon').as_posix()}/{_strip(p, '_rgb_anon.png')}": p
        for d in image_dirs
        for p in d.glob("*/*_rgb_anon.png")
    }
    if not images:
        where = ", ".join(str(d) for d in image_dirs)
        raise _layout_error(f"{name} images", root, layout, f"No *_rgb_anon.png in {where}.", kind)
    if not with_labels:
        return [Sample(images[k], None, "train_ids") for k in sorted(images)]
    labels = {
        f"{p.parent.relative_to(root / 'gt').as_posix()}/{_strip(p, '_gt_labelTrainIds.png')}": p
        for d in label_dirs
        for p in d.glob("*/*_gt_labelTrainIds.png")
    }
    return _pair(images, labels, name.split(" ")[0], policy, "train_ids")


def find_acdc(
    root: Path,
    split: str,
    with_labels: bool = True,
    conditions: Iterable[str] = ("all",),
    policy: BadSamplePolicy | None = None,
) -> list[Sample]:
    """ACDC in its shipped layout, one or more of the four adverse conditions."""
    root, policy = Path(root), policy or BadSamplePolicy()
    conds = _conditions(conditions, ACDC_CONDITIONS, "ACDC")
    return _find_anon(
        root,
        [root / "rgb_anon" / c / split for c in conds],
        [root / "gt" / c / split for c in conds],
        with_labels,
        f"ACDC split '{split}' ({', '.join(conds)})",
        ACDC_LAYOUT,
        ACDC_HINT,
        "acdc",
        policy,
    )


def find_darkzurich(
    root: Path,
    split: str,
    with_labels: bool = True,
    conditions: Iterable[str] = ("all",),
    policy: BadSamplePolicy | None = None,
) -> list[Sample]:
    """Dark Zurich in its shipped layout. `all` means every condition folder the split has
    (train: day, twilight, night; val and test: night); the benchmarks name `night`."""
    root, policy = Path(root), policy or BadSamplePolicy()
    requested = [getattr(c, "value", c) for c in conditions]
    if "all" in requested:
        present = [c for c in DARKZURICH_CONDITIONS if (root / "rgb_anon" / split / c).is_dir()]
        conds = present or ["night"]  # none present: report the night folder as missing
    else:
        conds = _conditions(requested, DARKZURICH_CONDITIONS, "Dark Zurich")
    if with_labels and split != "val":
        raise _layout_error(
            f"Dark Zurich labels of split '{split}'",
            root,
            DARKZURICH_LAYOUT,
            "Dark Zurich publishes labels for val only; train on its images unlabelled.",
            "darkzurich",
        )
    return _find_anon(
        root,
        [root / "rgb_anon" / split / c for c in conds],
        [root / "gt" / split / c for c in conds],
        with_labels,
        f"Dark Zurich split '{split}' ({', '.join(conds)})",
        DARKZURICH_LAYOUT,
        DARKZURICH_HINT,
        "darkzurich",
        policy,
    )


FINDERS: dict[str, Callable[..., list[Sample]]] = {
    "gta": find_gta,
    "synthia": find_synthia,
    "cityscapes": find_cityscapes,
    "acdc": find_acdc,
    "darkzurich": find_darkzurich,
}


# --------------------------------------------------------------------------- the dataset


class SegmentationDataset(torch.utils.data.Dataset):
    """Samples + a transform. Returns {"image", "label" (if any), "index"}, and for evaluation
    sets (`substitute=False`) also "image_hw" (the file's size) and "bad".

    A bad file found while loading is handled by `policy`: with `error` the loader stops with
    the file's name; with `skip` it is marked bad (in memory shared with the loader workers, so
    each file counts once however many workers meet it) and a training set serves the next
    good sample instead, while an evaluation set (`substitute=False`) serves an all-ignore item
    flagged `bad`, which adds nothing to the confusion matrix and keeps the order of the split.
    """

    def __init__(
        self,
        samples: list[Sample],
        transform: Callable,
        load_labels: bool = True,
        policy: BadSamplePolicy | None = None,
        substitute: bool = True,
    ):
        self.samples = samples
        self.transform = transform
        self.load_labels = load_labels
        self.policy = policy or BadSamplePolicy()
        self.substitute = substitute
        self._bad = multiprocessing.RawArray(ctypes.c_bool, max(len(samples), 1))

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def skipped_count(self) -> int:
        """Files dropped so far: while listing the split, and while loading (any worker)."""
        return len(self.policy.skipped) + sum(self._bad[: len(self.samples)])

    def skipped_files(self) -> list[str]:
        loaded = [str(self.samples[i].image) for i in range(len(self.samples)) if self._bad[i]]
        return list(self.policy.skipped) + loaded

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(RGB image, train-ID label or None) of one sample; BadSampleError if unusable."""
        sample = self.samples[index]
        image = read_image(sample.image)
        label = None
        if self.load_labels and sample.label is not None:
            label = read_train_ids(sample.label, sample.encoding)
            if label.shape != image.shape[:2]:
                raise BadSampleError(
                    f"label {sample.label} is {label.shape[1]}x{label.shape[0]} but image "
                    f"{sample.image} is {image.shape[1]}x{image.shape[0]}; expected equal sizes"
                )
        return image, label

    def _item(self, index: int, image: np.ndarray, label: np.ndarray | None) -> dict[str, Any]:
        out = self.transform(image, label)
        if not self.substitute:  # evaluation: predictions are written at the file's size
            out["image_hw"] = torch.tensor(image.shape[:2])
        out["index"] = index
        return out

    def _blank(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        hw = image_size(sample.image) or (sample.label and image_size(sample.label)) or (64, 64)
        label = np.full(hw, IGNORE_INDEX, np.uint8) if self.load_labels else None
        out = self._item(index, np.zeros((*hw, 3), np.uint8), label)
        out["bad"] = True
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        for step in range(n):
            i = (index + step) % n
            if self._bad[i]:
                if not self.substitute:
                    return self._blank(i)
                continue
            try:
                image, label = self.load(i)
            except BadSampleError as err:
                if self.policy.mode == "error":
                    self.policy.report(str(err))
                self._bad[i] = True
                warnings.warn(f"skipping {err}", BadSampleWarning, stacklevel=2)
                if not self.substitute:
                    return self._blank(i)
                continue
            out = self._item(i, image, label)
            if not self.substitute:
                out["bad"] = False
            return out
        raise BadSampleError(f"every one of the {n} samples of this dataset is unreadable")


def build_dataset(
    kind: str,
    root: str | Path,
    split: str,
    transform: Callable,
    load_labels: bool = True,
    conditions: Iterable[str] = ("all",),
    on_bad_sample: str = "error",
    substitute: bool = True,
) -> SegmentationDataset:
    kind = getattr(kind, "value", kind)
    if kind not in FINDERS:
        raise ValueError(f"unknown dataset kind '{kind}'; expected one of {sorted(FINDERS)}")
    policy = BadSamplePolicy(on_bad_sample)
    samples = FINDERS[kind](Path(root), split, load_labels, conditions, policy)
    if not samples:
        raise DatasetLayoutError(
            f"no usable {kind} sample in split '{split}' under {root}: every image was skipped "
            f"({len(policy.skipped)} bad files, first: {policy.skipped[:1]})"
        )
    return SegmentationDataset(samples, transform, load_labels, policy, substitute)
