"""The EMA teacher of mean-teacher self-training (DACS/DAFormer/MIC).

The teacher is never trained by gradient: at the start of every iteration, before any forward
pass, its parameters move towards the student's by θ_T ← α_t θ_T + (1 − α_t) θ_S with the ramp
α_t = min(1 − 1/(t+1), α). Up to t = 1/(1−α) − 1 the teacher is therefore the plain average of
all student states so far, so early pseudo-labels are not dominated by the random initial
network. Iteration 0 copies the student outright.
"""

from __future__ import annotations

import copy

import torch
from timm.layers import DropPath
from torch import nn


def ema_alpha(it: int, alpha: float) -> float:
    """α_t of the reference: min(1 − 1/(t+1), α); 0 at t = 0 (a plain copy)."""
    return min(1.0 - 1.0 / (it + 1), alpha)


def ema_update_(teacher: list[torch.Tensor], student: list[torch.Tensor], alpha: float) -> None:
    """θ_T ← α θ_T + (1 − α) θ_S for every tensor, in place.

    One fused pass per tensor group: `lerp_(θ_T, θ_S, 1 − α)` reads two arrays and writes one,
    where the textbook `mul_(α).add_(θ_S, alpha=1 − α)` makes two passes; on a GPU the foreach
    form also launches a handful of kernels instead of two per tensor.
    """
    if not teacher:
        return
    if len(teacher) != len(student):
        raise ValueError(f"teacher has {len(teacher)} tensors but student {len(student)}")
    torch._foreach_lerp_(teacher, student, 1.0 - alpha)


def _float_buffers(module: nn.Module) -> list[torch.Tensor]:
    return [b for b in module.buffers() if b.is_floating_point()]


def disable_dropout(module: nn.Module) -> None:
    """Dropout and drop-path off while everything else (BatchNorm) keeps its mode.

    The reference teacher runs BatchNorm in train mode (batch statistics on the target batch)
    but never drops activations: pseudo-labels must not be noisy by construction.
    """
    for m in module.modules():
        if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, DropPath)):
            m.eval()


class EMATeacher:
    """Holds the teacher copy of a student network and keeps it averaged.

    `bn_train` reproduces the reference, whose teacher BatchNorm layers use the statistics of
    the target batch (its running buffers are never averaged, so in eval mode they would stay
    at the values copied at iteration 0); `ema_buffers` averages floating buffers too, which
    makes eval-mode BatchNorm meaningful.
    """

    def __init__(
        self,
        student: nn.Module,
        alpha: float = 0.999,
        ema_buffers: bool = False,
        bn_train: bool = True,
    ):
        self.alpha = alpha
        self.ema_buffers = ema_buffers
        self.bn_train = bn_train
        self.model = copy.deepcopy(student)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.prepare_forward()

    def prepare_forward(self) -> nn.Module:
        """Put the teacher in its pseudo-labelling mode and return it."""
        self.model.train(self.bn_train)
        disable_dropout(self.model)
        return self.model

    @torch.no_grad()
    def update(self, student: nn.Module, it: int) -> float:
        """Average the student in (copy it at it = 0); returns the α_t used."""
        alpha = ema_alpha(it, self.alpha)
        teacher_t = list(self.model.parameters())
        student_t = [p.detach() for p in student.parameters()]
        if self.ema_buffers:
            teacher_t += _float_buffers(self.model)
            student_t += _float_buffers(student)
        ema_update_(teacher_t, student_t, alpha)
        return alpha

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
