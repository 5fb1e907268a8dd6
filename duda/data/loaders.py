"""Loaders for a source->target pair: endless paired training batches and the target val split.

UDA training draws one source and one target batch per iteration for a fixed number of
iterations, not epochs, so each domain gets its own endlessly re-shuffled loader.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from duda.data.datasets import SegmentationDataset


def _seed_worker(worker_id: int) -> None:
    """Distinct, reproducible augmentation streams per worker (torch seeds each worker as
    base_seed + worker_id; numpy, random and albumentations are derived from it)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    info.dataset.transform.set_seed(seed)


class EndlessLoader:
    """Iterates a DataLoader forever, re-shuffling each pass; counts completed passes."""

    def __init__(self, loader: DataLoader):
        self.loader = loader
        self.epoch = 0
        self._it: Iterator | None = None

    def __next__(self) -> dict[str, Any]:
        if self._it is None:
            self._it = iter(self.loader)
        try:
            return next(self._it)
        except StopIteration:
            self.epoch += 1
            self._it = iter(self.loader)
            return next(self._it)

    def __iter__(self) -> EndlessLoader:
        return self


def train_loader(
    dataset: SegmentationDataset, batch_size: int, num_workers: int, seed: int
) -> EndlessLoader:
    if len(dataset) < batch_size:
        raise ValueError(f"{len(dataset)} training images cannot fill a batch of {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        generator=generator,
        persistent_workers=num_workers > 0,
    )
    return EndlessLoader(loader)


def eval_loader(dataset: SegmentationDataset, batch_size: int, num_workers: int) -> DataLoader:
    """Batches only images of equal size together, so batch_size > 1 needs uniform image sizes."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
