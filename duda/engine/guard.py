"""Divergence guard: skip non-finite steps, and stop a run that keeps producing them.

A step is non-finite when a logged loss is inf or NaN, or when an optimizer refused its update
because a gradient was (`duda.optim.FiniteAdamW`; the refused update leaves weights and moments
as they were). Isolated bad steps (one odd batch) are skipped and counted; `max_in_row` of them
in a row mean the run has diverged, and continuing would only burn GPU hours.
"""

from __future__ import annotations

from typing import Any

import torch


class Diverged(RuntimeError):
    """The run stopped after too many non-finite steps in a row; the message says where to
    resume from."""


def losses_finite(logs: dict[str, torch.Tensor]) -> bool:
    """Whether every `loss/*` value is finite (one device sync for all of them)."""
    losses = [v.detach().float().reshape(()) for k, v in logs.items() if k.startswith("loss/")]
    return not losses or bool(torch.isfinite(torch.stack(losses)).all())


class DivergenceGuard:
    def __init__(self, max_in_row: int):
        self.max_in_row = max_in_row  # 0: skip bad steps for ever, never stop
        self.in_row = 0
        self.total = 0
        self.first_bad: int | None = None  # first iteration of the current streak

    def observe(self, logs: dict[str, torch.Tensor], update_refused: bool, it: int) -> bool:
        """Count iteration `it`; returns whether it was finite."""
        if not update_refused and losses_finite(logs):
            self.in_row, self.first_bad = 0, None
            return True
        self.total += 1
        self.in_row += 1
        if self.first_bad is None:
            self.first_bad = it
        return False

    @property
    def tripped(self) -> bool:
        return self.max_in_row > 0 and self.in_row >= self.max_in_row

    def state_dict(self) -> dict[str, Any]:
        return {"in_row": self.in_row, "total": self.total, "first_bad": self.first_bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.in_row, self.total = int(state["in_row"]), int(state["total"])
        self.first_bad = state["first_bad"]


def all_finite(tree: Any) -> bool:
    """Whether every floating tensor in a nested state is finite."""
    if isinstance(tree, torch.Tensor):
        return not tree.is_floating_point() or bool(torch.isfinite(tree).all())
    if isinstance(tree, dict):
        return all(all_finite(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return all(all_finite(v) for v in tree)
    return True
