"""Multi-teacher fusion: several teachers' per-pixel class distributions become one target.

In stage 2 the EMA teacher and every `distill.extra_teachers` network predict on the same target
crop; their softmax maps (N,C,H,W each, same size: the caller upsamples) are fused here into one
probability map p_F. The hard pseudo-label and its confidence are then the usual
`p_F.max(dim=1)`. Rules (`distill/fusion` config group; the paper does not say which it uses):

- `mean`: the per-pixel average, every teacher counts the same;
- `max_confidence`: per pixel, the whole distribution of the teacher whose top probability is
  highest (ties go to the earlier teacher in the list);
- `weighted`: a weighted average with per-teacher weights, normalised to sum to 1.

Fusion is done in float32 (teachers may run under bf16 autocast) and the result is a proper
distribution whenever the inputs are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

FUSIONS = ("mean", "max_confidence", "weighted")


def _stack(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    if len(probs) == 0:
        raise ValueError("fusion needs at least one teacher probability map")
    shape = probs[0].shape
    if len(shape) != 4 or any(p.shape != shape for p in probs):
        raise ValueError(
            "teacher probability maps must all be N,C,H,W of one shape, got "
            f"{[tuple(p.shape) for p in probs]}"
        )
    return torch.stack([p.float() for p in probs])  # T,N,C,H,W


def fuse_mean(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Average of the teachers' probability maps."""
    return _stack(probs).mean(dim=0)


def fuse_max_confidence(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per pixel, the probability vector of the most confident teacher (highest max prob)."""
    stacked = _stack(probs)
    confidence = stacked.amax(dim=2)  # T,N,H,W
    best = confidence.argmax(dim=0)  # N,H,W; first maximum on ties
    index = best[None, :, None].expand(1, *stacked.shape[1:])  # 1,N,C,H,W
    return stacked.gather(0, index)[0]


def fuse_weighted(
    probs: Sequence[torch.Tensor], weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Σ_t w_t p_t / Σ_t w_t; `weights` None = equal weights (= `fuse_mean`)."""
    stacked = _stack(probs)
    if weights is None:
        return stacked.mean(dim=0)
    if len(weights) != len(probs):
        raise ValueError(
            f"distill.fusion.weights has {len(weights)} entries for {len(probs)} teachers "
            "(the EMA teacher first, then each of distill.extra_teachers)"
        )
    w = torch.tensor([float(x) for x in weights], dtype=torch.float32, device=stacked.device)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"distill.fusion.weights must be >= 0 with a positive sum, got {list(weights)}"
        )
    w = w / w.sum()
    return (stacked * w.view(-1, 1, 1, 1, 1)).sum(dim=0)


def fuse(
    probs: Sequence[torch.Tensor], rule: str = "mean", weights: Sequence[float] | None = None
) -> torch.Tensor:
    """Fuse teacher probability maps by the named rule (see the module docstring)."""
    if rule == "mean":
        return fuse_mean(probs)
    if rule == "max_confidence":
        return fuse_max_confidence(probs)
    if rule == "weighted":
        return fuse_weighted(probs, weights)
    raise ValueError(f"unknown distill fusion '{rule}'; expected one of {FUSIONS}")


def build_fusion(fusion_cfg: Any) -> Callable[[Sequence[torch.Tensor]], torch.Tensor]:
    """`fuse` bound to the `distill.fusion` node (name, weights); checks the name at build time."""
    rule = str(fusion_cfg.name)
    if rule not in FUSIONS:
        raise ValueError(f"unknown distill fusion '{rule}'; expected one of {FUSIONS}")
    weights = None if fusion_cfg.weights is None else [float(w) for w in fusion_cfg.weights]

    def _fuse(probs: Sequence[torch.Tensor]) -> torch.Tensor:
        return fuse(probs, rule, weights)

    return _fuse
