"""Inconsistency loss: a pseudo-label CE that weighs up the classes the student adapts worst.

This project's definition (the paper names the loss, not its formula; docs/method.md): per class
c, track d_c = 1 − IoU_c(argmax student, fused pseudo-label) over the target pixels of each batch,
smoothed by an EMA; turn it into class weights w_c ∝ d_c^γ with mean 1 over the classes seen so
far; weight each pixel's CE by the weight of its pseudo-label class. A class the student already
agrees with costs little, one it keeps confusing costs more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from duda.data.classes import IGNORE_INDEX
from duda.uda.losses import pixel_ce, resize_logits

# "classes": mean weight 1 over the classes (the method document's rule). "pixels": each batch's
# weights rescaled to mean 1 over its labelled pixels, so re-weighting moves emphasis between
# classes without shrinking the target loss when the frequent classes are the well-adapted ones.
NORMALIZE = ("classes", "pixels")


class InconsistencyTracker:
    """Per-class EMA of the student's disagreement with the fused pseudo-label.

    `update` is called once per stage-2 iteration with the student's prediction and the fused
    label; `weights()` gives the class weights for the loss. Everything stays on the device of
    the inputs and nothing synchronises with the host, so tracking costs no stall.

    EMA rule: a class is updated in a batch only when it occurs in the prediction or in the label
    (union > 0) of the counted pixels; its first observation initialises d_c (no bias towards an
    arbitrary start value), later ones give d_c ← m·d_c + (1 − m)·d_c^batch.

    Weights: with S the set of classes seen at least once and C_S = |S|,
    w_c = C_S · d_c^γ / Σ_{k∈S} d_k^γ for c ∈ S, so the mean weight over S is exactly 1 before
    clipping; classes never seen get 1, and so does every class while Σ_{k∈S} d_k^γ = 0 (a student
    in full agreement). Seen-class weights are then clipped to `clip`, which can move their mean
    away from 1 when a bound is active; unseen classes are not clipped.
    """

    def __init__(
        self,
        num_classes: int,
        momentum: float = 0.99,
        gamma: float = 1.0,
        clip: Sequence[float] = (0.1, 10.0),
        ignore_index: int = IGNORE_INDEX,
        normalize: str = "classes",
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"inconsistency momentum must be in [0, 1), got {momentum}")
        if gamma < 0:
            raise ValueError(f"inconsistency gamma must be >= 0, got {gamma}")
        if len(clip) != 2 or not 0 <= clip[0] <= clip[1]:
            raise ValueError(
                f"inconsistency clip must be [low, high] with 0 <= low <= high: {clip}"
            )
        if normalize not in NORMALIZE:
            raise ValueError(
                f"inconsistency normalize must be one of {NORMALIZE}, got {normalize!r}"
            )
        self.normalize = normalize
        self.num_classes = int(num_classes)
        self.momentum = float(momentum)
        self.gamma = float(gamma)
        self.clip = (float(clip[0]), float(clip[1]))
        self.ignore_index = ignore_index
        self._d = torch.zeros(self.num_classes)
        self._seen = torch.zeros(self.num_classes, dtype=torch.bool)

    @classmethod
    def from_config(cls, cfg: Any, num_classes: int) -> InconsistencyTracker:
        """From the `distill.inconsistency` node (momentum, gamma, clip, normalize)."""
        return cls(num_classes, cfg.momentum, cfg.gamma, tuple(cfg.clip), normalize=cfg.normalize)

    @property
    def disagreement(self) -> torch.Tensor:
        """EMA d_c per class (a copy), NaN for classes never seen: for logging."""
        return torch.where(self._seen, self._d, torch.full_like(self._d, float("nan")))

    @property
    def seen(self) -> torch.Tensor:
        return self._seen.clone()

    @torch.no_grad()
    def update(
        self,
        student_pred: torch.Tensor,
        fused_label: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> None:
        """Fold one batch into the EMA.

        `student_pred`: hard labels (N,H,W) or logits (N,C,h,w) (upsampled bilinearly to the
        label size, then argmax). `fused_label` (N,H,W): the fused pseudo-label, values in
        [0, C) or `ignore_index`. `valid` (N,H,W): nonzero = counted; None = every non-ignored
        pixel.
        """
        if student_pred.ndim == 4:
            student_pred = resize_logits(student_pred.float(), fused_label.shape[-2:]).argmax(dim=1)
        if student_pred.shape != fused_label.shape:
            raise ValueError(
                f"student prediction {tuple(student_pred.shape)} and fused label "
                f"{tuple(fused_label.shape)} must have the same N,H,W"
            )
        device = fused_label.device
        if self._d.device != device:
            self._d, self._seen = self._d.to(device), self._seen.to(device)
        keep = fused_label != self.ignore_index
        if valid is not None:
            keep &= valid.to(device) != 0
        pred = student_pred[keep].long()
        label = fused_label[keep].long()
        c = self.num_classes
        inter = torch.bincount(label[pred == label], minlength=c).float()
        union = torch.bincount(pred, minlength=c).float() + torch.bincount(label, minlength=c)
        union = union - inter
        present = union > 0
        d_batch = 1.0 - inter / union.clamp(min=1)
        ema = self.momentum * self._d + (1.0 - self.momentum) * d_batch
        updated = torch.where(self._seen, ema, d_batch)
        self._d = torch.where(present, updated, self._d)
        self._seen = self._seen | present

    def weights(self) -> torch.Tensor:
        """Class weights w (C,), detached, on the device of the last `update`'s inputs."""
        seen = self._seen
        powered = torch.where(seen, self._d.clamp(min=0) ** self.gamma, torch.zeros_like(self._d))
        total = powered.sum()
        scaled = seen.sum() * powered / total.clamp(min=torch.finfo(powered.dtype).tiny)
        scaled = scaled.clamp(*self.clip)
        use = seen & (total > 0)
        return torch.where(use, scaled, torch.ones_like(scaled)).detach()

    def loss_weights(self, label: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """The class weights for this batch's loss under the tracker's `normalize` rule:
        `weights()` as they are ("classes"), or rescaled to mean 1 over the batch's counted
        pixels ("pixels", `pixel_mean_one`)."""
        weights = self.weights()
        if self.normalize == "pixels":
            weights = pixel_mean_one(weights, label, valid)
        return weights

    def state_dict(self) -> dict[str, Any]:
        """The EMA state, on the CPU, for checkpoints (hyper-parameters come from the config)."""
        return {
            "num_classes": self.num_classes,
            "disagreement": self._d.detach().cpu().clone(),
            "seen": self._seen.detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["num_classes"]) != self.num_classes:
            raise ValueError(
                f"inconsistency state is for {state['num_classes']} classes, the run has "
                f"{self.num_classes}"
            )
        device = self._d.device
        self._d = state["disagreement"].to(device=device, dtype=torch.float32).clone()
        self._seen = state["seen"].to(device=device, dtype=torch.bool).clone()


def pixel_mean_one(
    class_weights: torch.Tensor,
    label: torch.Tensor,
    valid: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """`class_weights` scaled so that the mean of w_{label(p)} over the counted pixels is 1
    (unchanged when no pixel counts). Why: with class-mean normalisation the frequent, well
    adapted classes get weights near the lower clip, and as they hold most pixels the whole
    target loss shrinks several-fold while the source CE keeps its weight."""
    keep = label != ignore_index
    if valid is not None:
        keep &= valid != 0
    counts = torch.bincount(label[keep].long(), minlength=class_weights.numel()).to(class_weights)
    total = counts.sum()
    mean = (counts * class_weights).sum() / total.clamp(min=1)
    return torch.where(total > 0, class_weights / mean.clamp(min=1e-12), class_weights).detach()


def inconsistency_loss(
    student_logits: torch.Tensor,
    fused_label: torch.Tensor,
    class_weights: torch.Tensor,
    pixel_weight: torch.Tensor | float | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """CE(z_S, ŷ_F) per pixel × w_{ŷ_F(p)} × pixel weight, averaged over valid pixels.

    Valid = fused label not `ignore_index`; the divisor counts those pixels (zero-weight ones
    such as the border margin included), so the loss does not grow when confidence falls.
    Logits are upsampled to the label size as in `pixel_ce`; the class weights are constants.
    """
    if isinstance(pixel_weight, (int, float)):
        pixel_weight = torch.as_tensor(float(pixel_weight), device=student_logits.device)
    return pixel_ce(
        student_logits,
        fused_label,
        weight=pixel_weight,
        ignore_index=ignore_index,
        class_weight=class_weights,
        avg_non_ignore=True,
    )
