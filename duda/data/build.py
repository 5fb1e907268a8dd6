"""Build a benchmark pair's datasets from the `dataset` config group."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duda.data.datasets import SegmentationDataset, build_dataset
from duda.data.transforms import build_eval_transform, build_train_transform


@dataclass
class DomainData:
    """One side of the pair: its training set and, for the target, the evaluation split."""

    train: SegmentationDataset
    val: SegmentationDataset | None


def _value(x: Any) -> Any:
    return getattr(x, "value", x)  # OmegaConf hands enum fields back as Enum members


def build_domain(
    domain_cfg: Any, seed: int, with_val: bool, train_labels: bool = True
) -> DomainData:
    kind, root = _value(domain_cfg.kind), Path(domain_cfg.root)
    transform = build_train_transform(
        crop_hw=domain_cfg.crop_hw,
        resize_hw=domain_cfg.resize_hw,
        cat_max_ratio=domain_cfg.cat_max_ratio,
        seed=seed,
    )
    train = build_dataset(kind, root, domain_cfg.train_split, transform, load_labels=train_labels)
    val = None
    if with_val:
        val_tf = build_eval_transform(domain_cfg.resize_hw)
        val = build_dataset(kind, root, domain_cfg.val_split, val_tf, load_labels=True)
    return DomainData(train, val)


def ensure_synthetic(dataset_cfg: Any) -> None:
    """Generate the embedded benchmark on first use, so a fresh clone can train at once.

    The generator writes `<out>/gta` and `<out>/cityscapes`; `<out>` is the parent of the target
    root (the source root may point into either, e.g. the target itself for an oracle). An existing benchmark made with the same arguments is left untouched.
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
