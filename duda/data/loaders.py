"""Loaders for a source->target pair: endless paired training batches and the target val split.

UDA training draws one source and one target batch per iteration for a fixed number of
iterations, not epochs, so each domain gets an endless stream of draws. The stream is a pure
function of (seed, draw number n): draw n takes position n mod N of pass n // N, whose order is
a permutation seeded by (seed, pass), and its augmentation (and rare-class choice) is seeded by
(seed, n). Hence a loader's whole state is one integer, the number of draws consumed, which a
checkpoint stores and a resumed run starts from; and the batches do not depend on how many
worker processes load them. Batches run on across the end of a pass (no draw is dropped).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from duda.data.datasets import SegmentationDataset

_ORDER, _SAMPLE = 0, 1  # streams of derived seeds: pass permutations, per-draw augmentation


def derive_seed(seed: int, stream: int, n: int) -> int:
    """A well-mixed 32-bit seed for item `n` of `stream` (neighbouring n share nothing)."""
    return int(np.random.SeedSequence([seed, stream, n]).generate_state(1)[0])


def _shield_from_job_signals() -> None:
    """Keep a worker alive through the signals a cluster sends to every process of a job.

    SLURM signals all processes of a job step; a worker killed by that SIGTERM makes torch
    raise "worker killed" in the main process at once, mid-step, before the trainer could
    save its checkpoint. So the worker ignores the stop signals the main process handles
    (SIGUSR1/2) and takes SIGTERM only from its parent (the loader shutting it down) or once
    orphaned; a thread reads the sender, which a Python signal handler cannot see.
    """
    if not hasattr(signal, "sigwaitinfo"):  # not Linux: no SLURM to shield from
        return
    parent = os.getppid()
    for s in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        while True:
            info = signal.sigwaitinfo({signal.SIGTERM})
            if info.si_pid == parent or os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=wait, daemon=True, name="sigterm-from-parent").start()


def _init_worker(worker_id: int) -> None:
    """Reproducible global RNGs in each worker, should any library code draw from them (the
    samples themselves are seeded per draw by `SeededDraws`), and the signal shield."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    _shield_from_job_signals()


class DrawSampler(Sampler[int]):
    """Draw numbers start, start + 1, ... for ever."""

    def __init__(self, start: int = 0):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


class SeededDraws(Dataset):
    """Maps a draw number to a sample of `dataset`, with the transform seeded for that draw."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self._order: tuple[int, torch.Tensor] | None = None  # (pass, its permutation), cached

    def __len__(self) -> int:
        return len(self.dataset)

    def index_of(self, n: int) -> int:
        epoch, pos = divmod(n, len(self.dataset))
        if self._order is None or self._order[0] != epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, _ORDER, epoch))
            self._order = (epoch, torch.randperm(len(self.dataset), generator=g))
        return int(self._order[1][pos])

    def __getitem__(self, n: int) -> dict[str, Any]:
        transform = getattr(self.dataset, "transform", None)
        if hasattr(transform, "set_seed"):
            transform.set_seed(derive_seed(self.seed, _SAMPLE, n))
        return self.dataset[self.index_of(n)]


class EndlessLoader:
    """Batches of consecutive draws for ever; `position` counts the draws handed out so far."""

    def __init__(self, draws: SeededDraws, batch_size: int, num_workers: int):
        self.draws = draws
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.position = 0
        self._it: Iterator | None = None

    @property
    def epoch(self) -> int:
        """Completed passes over the dataset."""
        return self.position // len(self.draws)

    def _start(self) -> Iterator:
        loader = DataLoader(
            self.draws,
            batch_size=self.batch_size,
            sampler=DrawSampler(self.position),
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=_init_worker if self.num_workers > 0 else None,
            # its own generator: starting workers must not draw from the global torch RNG,
            # which the training step uses (dropout, drop-path) and a checkpoint restores
            generator=torch.Generator().manual_seed(self.draws.seed),
        )
        return iter(loader)

    def __next__(self) -> dict[str, Any]:
        if self._it is None:
            self._it = self._start()
        batch = next(self._it)
        self.position += self.batch_size
        return batch

    def __iter__(self) -> EndlessLoader:
        return self

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after the draws a checkpoint had consumed (prefetched ones are redrawn)."""
        self.position = int(state["position"])
        self._it = None


def train_loader(
    dataset: SegmentationDataset, batch_size: int, num_workers: int, seed: int
) -> EndlessLoader:
    if len(dataset) < batch_size:
        raise ValueError(f"{len(dataset)} training images cannot fill a batch of {batch_size}")
    return EndlessLoader(SeededDraws(dataset, seed), batch_size, num_workers)


def eval_loader(dataset: SegmentationDataset, batch_size: int, num_workers: int) -> DataLoader:
    """Batches only images of equal size together, so batch_size > 1 needs uniform image sizes.
    Its own generator keeps evaluation from drawing on the training step's global RNG."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )
