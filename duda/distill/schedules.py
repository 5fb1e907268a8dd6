"""Gradual distillation: the KD weight λ(t) as a pure function of the iteration t.

Early in stage 1 the EMA teacher is itself unadapted, so the student should lean on it more as it
improves: λ starts at 0 and reaches `distill.kd_weight`. The ramp's shape is the
`distill/schedule` config group; which shape DUDA uses is not public (docs/method.md), `linear`
is this project's default. Every schedule is a frozen `Schedule` value: callable, picklable and
printable, so the trainer can log λ(t) and a test can check it at any iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SCHEDULES = ("linear", "cosine", "step", "constant")


def _progress(t: float, start: int, end: int) -> float:
    """Share of the ramp done at t, in [0, 1]; a ramp of zero length is a step at `start`."""
    if end <= start:
        return 1.0 if t >= start else 0.0
    return min(max((t - start) / (end - start), 0.0), 1.0)


def linear(t: float, weight: float, start: int, end: int) -> float:
    """0 up to `start`, straight line to `weight` at `end`, `weight` afterwards."""
    return weight * _progress(t, start, end)


def cosine(t: float, weight: float, start: int, end: int) -> float:
    """Same endpoints as `linear`, half-cosine in between: flat at both ends of the ramp."""
    return weight * 0.5 * (1.0 - math.cos(math.pi * _progress(t, start, end)))


def step(t: float, weight: float, start: int) -> float:
    """0 before `start`, `weight` from `start` on."""
    return weight if t >= start else 0.0


def constant(t: float, weight: float) -> float:
    """`weight` at every iteration: distillation without a ramp (the ablation)."""
    return weight


@dataclass(frozen=True)
class Schedule:
    """λ(t) of one named shape; `Schedule(...)(t)` is the weight at iteration t."""

    name: str
    weight: float
    start: int = 0
    end: int = 0

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown distill schedule '{self.name}'; expected one of {SCHEDULES}")
        if self.start < 0:
            raise ValueError(f"distill.schedule.ramp_start must be >= 0, got {self.start}")
        if self.name in ("linear", "cosine") and self.end < self.start:
            raise ValueError(
                f"distill.schedule.ramp_end ({self.end}) must not come before ramp_start "
                f"({self.start})"
            )

    def __call__(self, t: float) -> float:
        if self.name == "linear":
            return linear(t, self.weight, self.start, self.end)
        if self.name == "cosine":
            return cosine(t, self.weight, self.start, self.end)
        if self.name == "step":
            return step(t, self.weight, self.start)
        return constant(t, self.weight)


def build_schedule(distill_cfg: Any, weight: float | None = None) -> Schedule:
    """The schedule of `distill_cfg` (the `distill` node: schedule, kd_weight, pre_iters).

    `weight` replaces `kd_weight` as the end value, so the same ramp can drive another term
    (`distill.pl_ramp`: the hard pseudo-label CE ramps to its own weight). `schedule.ramp_end`
    null means the end of stage 1, `distill.pre_iters`.
    """
    sched = distill_cfg.schedule
    end = sched.ramp_end if sched.ramp_end is not None else distill_cfg.pre_iters
    return Schedule(
        name=str(sched.name),
        weight=float(distill_cfg.kd_weight if weight is None else weight),
        start=int(sched.ramp_start),
        end=int(end),
    )
