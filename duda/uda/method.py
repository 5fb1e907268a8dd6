"""What the trainer needs from an adaptation method, and the pieces every method shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Protocol

import torch

Batch = dict[str, torch.Tensor]


class Method(Protocol):
    """A UDA method owns its networks, optimizers and schedules; the trainer owns the loop.

    `train_step` performs one full iteration (forward passes, backward, optimizer steps) and
    returns detached scalar tensors to log; the trainer turns them into numbers only at log
    time, so a GPU is not synchronised every iteration.
    """

    needs_target: bool

    def train_step(
        self, source: Batch, target: Batch | None, it: int
    ) -> dict[str, torch.Tensor]: ...

    def current_lr(self) -> float:
        """Learning rate of the deployed network's backbone group, for the logs."""
        ...

    def eval_model(self) -> torch.nn.Module:
        """The network whose target mIoU is reported (the deployed one)."""
        ...

    def pseudo_label_view(self, target: Batch, it: int) -> torch.Tensor | None:
        """The hard pseudo-label (N×H×W) the deployed network learns from at 0-based step
        `it`, for image panels; None for methods without one. Must leave every piece of
        training state as it was (see `buffers_kept`) and draw no random numbers."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def refused_updates(method: object) -> int:
    """Updates refused so far for non-finite gradients (`duda.optim.FiniteAdamW`) by the
    optimizers a method holds, its sub-methods' included (DUDA's large pair). Found among its
    attributes, and looked up afresh each time, so that an optimizer a method drops (DUDA's
    retired large student) is not kept alive by the trainer."""
    total = 0
    for value in vars(method).values():
        if isinstance(value, torch.optim.Optimizer):
            total += getattr(value, "skipped_steps", 0)
        elif hasattr(value, "train_step") and not isinstance(value, torch.nn.Module):
            total += refused_updates(value)
    return total


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision when asked for, a no-op context otherwise."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


@contextmanager
def buffers_kept(module: torch.nn.Module) -> Iterator[None]:
    """Restore the module's buffers afterwards: an extra forward of a teacher whose BatchNorm
    runs in train mode would otherwise move its running statistics (which `ema_buffers`
    averages into the training run)."""
    saved = [b.detach().clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(module.buffers(), saved, strict=True):
                buffer.copy_(value)
