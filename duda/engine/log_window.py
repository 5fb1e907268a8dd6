"""One log window of training figures: summed on the device, averaged at log time.

The loop adds each step's detached scalars without reading them back, so a GPU is not
synchronised every iteration; a checkpoint stores the open window, so that a run resumed in
the middle of a window logs the same means as the uninterrupted run.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from duda.data.classes import CLASS_NAMES
from duda.engine.metrics import summarize


def window_means(sums: dict[str, torch.Tensor], iters: int) -> dict[str, float]:
    """Log-window figures: scalars averaged over the window; `confusion/<name>` matrices
    (summed counts, e.g. pseudo-labels against target labels) become `<name>/acc`,
    `<name>/mIoU` and `<name>/iou/<class>` in percent."""
    out: dict[str, float] = {}
    for key, value in sums.items():
        if key.startswith("confusion/"):
            name = key.removeprefix("confusion/")
            summary = summarize(value.cpu(), CLASS_NAMES)
            out[f"{name}/acc"] = summary["aAcc"]
            out[f"{name}/mIoU"] = summary["mIoU"]
            out |= {f"{name}/iou/{c}": v for c, v in summary["iou"].items()}
        else:
            out[key] = float(value) / iters
    return out


class LogWindow:
    """One log window's sums, kept on the device and read back only at log time. A skipped
    (non-finite) step adds only its count, so one NaN does not blank the window's means."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.iters = 0
        self.nonfinite = 0
        self.start = time.perf_counter()

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums[k] + v.detach() if k in self.sums else v.detach().clone()
        self.iters += 1

    def means(self) -> dict[str, float]:
        out = window_means(self.sums, self.iters) if self.iters else {}
        elapsed = time.perf_counter() - self.start
        out["it_per_s"] = (self.iters + self.nonfinite) / max(elapsed, 1e-9)
        out["guard/nonfinite_steps"] = self.nonfinite
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "iters": self.iters, "nonfinite": self.nonfinite}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.iters, self.nonfinite = int(state["iters"]), int(state["nonfinite"])
