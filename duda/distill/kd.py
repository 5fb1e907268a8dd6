"""Soft knowledge distillation: the student matches the teacher's per-pixel class distribution.

Contract: the teacher side is always a **probability map** (N,C,H,W), already at the temperature
the caller wants. Probabilities, not logits, because DUDA's stage 2 distils from several fused
teachers and a fused map has no logits. Softening commutes with that choice:
softmax(z/τ) ∝ exp(z)^(1/τ) ∝ softmax(z)^(1/τ), so `soften(softmax(z), τ) == softmax(z/τ)` and a
fused map can be softened after fusion. `kd_loss` divides only the *student* logits by τ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from duda.uda.losses import resize_logits


def soften(probs: torch.Tensor, tau: float) -> torch.Tensor:
    """Probabilities at temperature τ along dim 1: p^(1/τ) renormalised (= softmax(z/τ)).

    Computed in log space, so tiny probabilities neither underflow to 0^(1/τ) nor make NaNs.
    """
    if tau <= 0:
        raise ValueError(f"KD temperature tau must be > 0, got {tau}")
    if tau == 1.0:
        return probs
    return torch.softmax(torch.log(probs.float().clamp_min(1e-30)) / tau, dim=1)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    tau: float = 1.0,
    valid: torch.Tensor | None = None,
    weight: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """τ² · KL(p_T ‖ softmax(z_S/τ)), per pixel, averaged over valid target pixels.

    - `student_logits` (N,C,h,w): raw logits; bilinearly upsampled (align_corners=False, as
      `duda.uda.losses.pixel_ce`) to the teacher's H×W when the sizes differ.
    - `teacher_probs` (N,C,H,W): the target distribution, already softened by the caller when
      τ ≠ 1 (see `soften`); treated as a constant (detached).
    - `valid` (N,H,W): nonzero = the pixel takes part; None = every pixel.
    - `weight`: optional per-pixel (N,H,W) or scalar weight, e.g. the pseudo-label confidence.

    Normalisation: Σ_p v_p · w_p · τ² · KL_p / #{p : v_p}. The divisor counts valid pixels, not
    weights, so a low-confidence batch gives a smaller loss (as the weighted CE does), and an
    all-invalid batch gives 0 (still attached to the graph) instead of NaN. The τ² factor keeps
    the gradient magnitude independent of τ (Hinton et al.).
    """
    if student_logits.ndim != 4 or teacher_probs.ndim != 4:
        raise ValueError(
            "kd_loss expects N,C,H,W tensors, got student "
            f"{tuple(student_logits.shape)} and teacher {tuple(teacher_probs.shape)}"
        )
    if student_logits.shape[:2] != teacher_probs.shape[:2]:
        raise ValueError(
            "student and teacher must agree on batch size and classes, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_probs.shape)}"
        )
    if tau <= 0:
        raise ValueError(f"KD temperature tau must be > 0, got {tau}")
    student_logits = resize_logits(student_logits, teacher_probs.shape[-2:])
    p_t = teacher_probs.detach().float()
    log_q = F.log_softmax(student_logits.float() / tau, dim=1)
    # xlogy gives 0·log 0 = 0: a teacher that is certain (one-hot) is a valid target.
    kl = (torch.xlogy(p_t, p_t) - p_t * log_q).sum(dim=1) * (tau * tau)
    if weight is not None:
        kl = kl * weight
    if valid is None:
        return kl.mean()
    mask = valid.to(device=kl.device) != 0
    return (kl * mask).sum() / mask.sum().clamp(min=1)
