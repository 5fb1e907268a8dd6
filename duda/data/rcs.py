"""Rare-class sampling (RCS) of the source training set, as DAFormer (reference sheet §6).

Why: in GTA5 a few classes (road, building, sky, vegetation) hold most pixels, while rider,
train, motorcycle and bicycle appear in few frames; uniform sampling shows them so rarely that
self-training forgets them. RCS draws a class first, with more weight on rare ones, then a frame
that contains enough of it, then re-crops until the crop does too.

The per-file class statistics come from `python -m duda.data.prepare` (written next to the data,
at the label files' resolution), not from training:

- `<root>/sample_class_stats.json`: ``[{"file": "<train-ID label, relative to root>",
  "<train id>": <pixel count>, ...}, ...]``
- `<root>/samples_with_class.json`: ``{"<train id>": [["<file>", <count>], ...]}``

Both are required, as the reference reads both: the first gives the class frequencies, the
second the candidate frames of each class.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from duda.data.classes import CLASS_NAMES, IGNORE_INDEX
from duda.data.datasets import SegmentationDataset, converted_label_path

STATS_FILE = "sample_class_stats.json"
SAMPLES_FILE = "samples_with_class.json"
MAX_CROP_TRIES = 10


class RCSStatsError(FileNotFoundError):
    """Statistics missing or not matching the dataset; the message says how to make them."""


def rcs_class_probs(stats: Iterable[Mapping[str, Any]], temperature: float) -> dict[int, float]:
    """P(c) = softmax((1 - f_c) / T) over the classes present in `stats`.

    f_c is class c's share of all counted pixels of the set (ignore excluded). Only classes with
    at least one pixel get a probability: a class that never occurs cannot be sampled.
    """
    if temperature <= 0:
        raise ValueError(f"rcs temperature must be > 0, got {temperature}")
    totals: dict[int, int] = {}
    for entry in stats:
        for key, count in entry.items():
            if key == "file":
                continue
            c = int(key)
            if c != IGNORE_INDEX and count > 0:
                totals[c] = totals.get(c, 0) + int(count)
    if not totals:
        raise ValueError("rcs statistics count no pixel of any class")
    classes = sorted(totals)
    freq = np.array([totals[c] for c in classes], dtype=np.float64)
    logits = (1.0 - freq / freq.sum()) / temperature
    probs = np.exp(logits - logits.max())  # shifted for stability; softmax is shift-invariant
    probs /= probs.sum()
    return {c: float(p) for c, p in zip(classes, probs, strict=True)}


def _prepare_hint(root: Path, kind: str) -> str:
    return f"Write them with: python -m duda.data.prepare {kind} --root {root}"


def load_stats(
    root: Path, kind: str = "gta"
) -> tuple[list[dict[str, Any]], dict[str, list[list[Any]]]]:
    """Read both statistics files of `root`, with one clear error if either is absent."""
    loaded = []
    for name in (STATS_FILE, SAMPLES_FILE):
        path = root / name
        if not path.is_file():
            raise RCSStatsError(
                f"rare-class sampling is enabled but {path} does not exist.\n"
                f"{_prepare_hint(root, kind)}  (or set dataset.rcs.enabled=false)"
            )
        with open(path) as f:
            loaded.append(json.load(f))
    return loaded[0], loaded[1]


class _ClassCropTransform:
    """The wrapped dataset's transform, re-run until the crop holds enough of `wanted`.

    Living inside the dataset's own `transform` slot lets the dataset load the frame its usual
    way, once, while the crop is re-drawn on the loaded arrays. It is also what
    `loaders._seed_worker` finds as `dataset.transform`, so its `set_seed` re-seeds the
    sampler's class/frame RNG together with the augmentation stream.
    """

    def __init__(self, inner: Any, threshold: float, on_seed: Any):
        self.inner = inner
        self.threshold = threshold
        self.on_seed = on_seed
        self.wanted: int | None = None

    def set_seed(self, seed: int) -> None:
        self.inner.set_seed(seed)
        self.on_seed(seed)

    def __call__(self, image: np.ndarray, label: np.ndarray | None) -> dict[str, Any]:
        out = self.inner(image, label)
        if self.wanted is None or label is None:
            return out
        for _ in range(MAX_CROP_TRIES - 1):
            if int((out["label"] == self.wanted).sum()) > self.threshold:
                break
            out = self.inner(image, label)
        return out


class RareClassDataset(torch.utils.data.Dataset):
    """Wraps a labelled training set; each item is a rare-class draw, the index is ignored.

    Draw c ~ P, then uniformly one frame with more than `min_pixels` pixels of c, then re-run
    the frame's random transform up to 10 times until the crop holds more than
    `min_pixels * min_crop_ratio` pixels of c (else the last crop is kept, as the reference).
    Classes without a candidate frame in this dataset are dropped and P renormalised over the
    rest (softmax restricted to a subset), reported in `dropped_classes`. Candidates come from
    `samples_with_class.json`, which holds only frames above the threshold `prepare` used, so a
    `min_pixels` below that threshold finds no extra frames.
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        root: str | Path,
        stats: list[dict[str, Any]],
        samples_with_class: Mapping[str, list[list[Any]]],
        temperature: float = 0.01,
        min_pixels: int = 3000,
        min_crop_ratio: float = 0.5,
        seed: int = 0,
        kind: str = "gta",
    ):
        if not dataset.load_labels:
            raise ValueError("rare-class sampling needs a dataset that loads its labels")
        self.root = Path(root)
        self.min_pixels = min_pixels
        self.crop_threshold = min_pixels * min_crop_ratio
        self.transform = _ClassCropTransform(dataset.transform, self.crop_threshold, self._seed)
        self.dataset = copy.copy(dataset)  # a shallow copy: the caller's dataset is left as is
        self.dataset.transform = self.transform
        self._seed(seed)

        by_file = self._index_by_file()
        candidates: dict[int, list[int]] = {}
        for key, entries in samples_with_class.items():
            found = [by_file[f] for f, n in entries if n > min_pixels and f in by_file]
            if found:
                candidates[int(key)] = found
        probs = rcs_class_probs(stats, temperature)
        self.dropped_classes = sorted(c for c in probs if c not in candidates)
        kept = {c: p for c, p in probs.items() if c in candidates}
        if not kept:
            raise RCSStatsError(
                f"no file of {self.root / SAMPLES_FILE} has more than {min_pixels} pixels of a "
                f"class and belongs to this dataset ({len(dataset)} frames under {self.root}). "
                f"Lower dataset.rcs.min_pixels, or re-write the statistics for this dataset: "
                f"{_prepare_hint(self.root, kind)}"
            )
        total = sum(kept.values())
        self.class_probs: dict[int, float] = {c: p / total for c, p in kept.items()}
        self.candidates = {c: candidates[c] for c in self.class_probs}
        self._classes = np.array(list(self.class_probs))
        self._p = np.array(list(self.class_probs.values()))

    @classmethod
    def from_root(
        cls,
        dataset: SegmentationDataset,
        root: str | Path,
        temperature: float,
        min_pixels: int,
        min_crop_ratio: float,
        seed: int,
        kind: str = "gta",
    ) -> RareClassDataset:
        """Wrap `dataset` with the statistics that `duda.data.prepare` wrote into `root`."""
        stats, samples_with_class = load_stats(Path(root), kind)
        return cls(
            dataset,
            root,
            stats,
            samples_with_class,
            temperature,
            min_pixels,
            min_crop_ratio,
            seed,
            kind,
        )

    def _seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _index_by_file(self) -> dict[str, int]:
        """Map the statistics' relative paths to dataset positions (the converted train-ID file,
        and the original label too, so statistics written either way match)."""
        by_file: dict[str, int] = {}
        for i, sample in enumerate(self.dataset.samples):
            if sample.label is None:
                continue
            for path in (converted_label_path(sample.label), sample.label):
                by_file[Path(os.path.relpath(path, self.root)).as_posix()] = i
        return by_file

    def draw(self) -> tuple[int, int]:
        """One (class, dataset index) draw: c ~ P, then a candidate frame uniformly."""
        c = int(self._classes[self.rng.choice(len(self._classes), p=self._p)])
        files = self.candidates[c]
        return c, files[int(self.rng.integers(len(files)))]

    def describe(self) -> str:
        """One log line: the sampling probability of each class, most likely first."""
        parts = [
            f"{CLASS_NAMES[c] if c < len(CLASS_NAMES) else c}={p:.3f}"
            for c, p in sorted(self.class_probs.items(), key=lambda kv: -kv[1])
        ]
        line = "RCS class probabilities: " + ", ".join(parts)
        if self.dropped_classes:
            line += f" (no candidate frame, never drawn: {self.dropped_classes})"
        return line

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        c, i = self.draw()
        self.transform.wanted = c
        try:
            out = self.dataset[i]  # loads the frame once; the transform re-crops as needed
        finally:
            self.transform.wanted = None
        out["rcs_class"] = c
        return out
