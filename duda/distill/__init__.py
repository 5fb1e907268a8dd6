"""DUDA's distillation pieces: KD loss, λ(t) schedules, teacher fusion, inconsistency weighting.

Each is a small pure function or state object tested alone; the DUDA training step that combines
them with the three networks lives in `duda/distill/step.py`. Definitions: docs/method.md.
"""

from duda.distill.fusion import build_fusion, fuse
from duda.distill.inconsistency import InconsistencyTracker, inconsistency_loss
from duda.distill.kd import kd_loss, soften
from duda.distill.schedules import Schedule, build_schedule

__all__ = [
    "InconsistencyTracker",
    "Schedule",
    "build_fusion",
    "build_schedule",
    "fuse",
    "inconsistency_loss",
    "kd_loss",
    "soften",
]
