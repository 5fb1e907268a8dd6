"""What the trainer needs from an adaptation method, and the pieces every method shares."""

from __future__ import annotations

from contextlib import nullcontext
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

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision when asked for, a no-op context otherwise."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
