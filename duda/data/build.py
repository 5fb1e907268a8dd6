"""Build a benchmark pair's datasets from the `dataset` config group."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duda.config import plain
from duda.data.datasets import SegmentationDataset, build_dataset
from duda.data.rcs import RareClassDataset
from duda.data.transforms import build_eval_transform, build_train_transform


@dataclass
class DomainData:
    """One side of the pair: its training set and, for the target, the evaluation split."""

    train: SegmentationDataset | RareClassDataset
    val: SegmentationDataset | None


def build_domain(
    domain_cfg: Any,
    seed: int,
    with_val: bool,
    train_labels: bool = True,
    rcs: Any = None,
    on_bad_sample: str = "skip",
) -> DomainData:
    """`rcs`: the `dataset.rcs` block, given for the source side only; when enabled, the training
    set is wrapped in rare-class sampling (its `describe()` is the line to log once).
    `on_bad_sample`: `dataset.on_bad_sample`; the datasets' `skipped_count` says how many files
    were left out (see `skipped_samples`)."""
    kind, root = plain(domain_cfg.kind), Path(domain_cfg.root)
    transform = build_train_transform(
        crop_hw=domain_cfg.crop_hw,
        resize_hw=domain_cfg.resize_hw,
        cat_max_ratio=domain_cfg.cat_max_ratio,
        seed=seed,
        pseudo_margins=getattr(domain_cfg, "pseudo_margins", None),
    )
    conditions = list(getattr(domain_cfg, "conditions", None) or ["all"])
    train = build_dataset(
        kind,
        root,
        domain_cfg.train_split,
        transform,
        load_labels=train_labels,
        conditions=conditions,
        on_bad_sample=plain(on_bad_sample),
    )
    if rcs is not None and rcs.enabled:
        train = RareClassDataset.from_root(
            train,
            root,
            temperature=rcs.temperature,
            min_pixels=rcs.min_pixels,
            min_crop_ratio=rcs.min_crop_ratio,
            seed=seed,
            kind=kind,
        )
    val = None
    if with_val:
        val_tf = build_eval_transform(domain_cfg.resize_hw)
        val = build_dataset(
            kind,
            root,
            domain_cfg.val_split,
            val_tf,
            load_labels=True,
            conditions=conditions,
            on_bad_sample=plain(on_bad_sample),
            substitute=False,  # a bad val file is left out of the metric, not replaced
        )
    return DomainData(train, val)


def skipped_samples(*domains: DomainData) -> int:
    """Files left out so far (bad or unpaired, `dataset.on_bad_sample=skip`) over the given
    domains' training and val sets: the number for the run log. Readable at any time; files
    met by loader workers are counted through memory shared with them."""
    total = 0
    for d in domains:
        for ds in (d.train, d.val):
            ds = getattr(ds, "dataset", ds)  # RareClassDataset wraps a SegmentationDataset
            total += int(getattr(ds, "skipped_count", 0))
    return total


def ensure_synthetic(dataset_cfg: Any) -> None:
    """Generate the embedded benchmark on first use, so a fresh clone can train at once.

    The generator writes `<out>/gta` and `<out>/cityscapes`; `<out>` is the parent of the target
    root (the source root may point into either, e.g. the target itself for an oracle). An
    existing benchmark made with the same arguments is left untouched. Both halves are then
    prepared like real data (train-ID labels + rare-class statistics, `duda.data.prepare`); that
    is a quick no-op once done.
    """
    synth = dataset_cfg.synth
    if synth is None:
        return
    target_root = Path(dataset_cfg.target.root)
    if target_root.name != "cityscapes":
        raise ValueError(
            f"a synthetic dataset needs target.root=<dir>/cityscapes (the generator's layout), "
            f"got {target_root}"
        )
    out = target_root.parent
    with _one_process_at_a_time(out.parent / f".{out.name}.lock"):
        _generate_and_prepare(dataset_cfg, out)


@contextmanager
def _one_process_at_a_time(lock: Path) -> Iterator[None]:
    """The parallel jobs of a sweep on a fresh checkout all find the benchmark missing; without
    a lock each would start generating it and delete what the others half wrote."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def _generate_and_prepare(dataset_cfg: Any, out: Path) -> None:
    synth = dataset_cfg.synth
    from duda.data.synth import generate  # heavy drawing code, only needed here

    generate(
        out,
        seed=synth.seed,
        source_count=synth.source_count,
        target_count=synth.target_count,
        val_count=synth.val_count,
        size=tuple(synth.size),
        target_style=synth.style,
    )
    from duda.data.prepare import prepare

    # samples_with_class.json at the configured RCS threshold: these images are far smaller
    # than GTA5's, so a synthetic config may lower dataset.rcs.min_pixels
    rcs = getattr(dataset_cfg, "rcs", None)
    min_pixels = int(getattr(rcs, "min_pixels", 3000))
    for kind in ("gta", "cityscapes"):
        # our own files: a bad one is a generator bug, so stop rather than skip
        prepare(kind, out / kind, workers=1, min_pixels=min_pixels, on_bad_sample="error")
