"""Source-only training: the lower bound every adaptation method is measured against."""

from __future__ import annotations

from typing import Any

import torch

from duda.uda.losses import pixel_ce
from duda.uda.method import Batch, autocast


class SourceOnly:
    """Supervised cross-entropy on labelled source crops; the target is never seen in training."""

    needs_target = False

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        source_weight: float = 1.0,
        amp_dtype: torch.dtype | None = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.source_weight = source_weight
        self.amp_dtype = amp_dtype

    def train_step(self, source: Batch, target: Batch | None, it: int) -> dict[str, torch.Tensor]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(source["image"].device, self.amp_dtype):
            logits = self.model(source["image"])
        loss = self.source_weight * pixel_ce(logits, source["label"])
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {"loss/source": loss.detach(), "loss/total": loss.detach()}

    def pseudo_label_view(self, target: Batch, it: int) -> None:
        return None  # no teacher, no pseudo-labels

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def eval_model(self) -> torch.nn.Module:
        return self.model

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
