"""The iteration loop: draw paired batches, step the method, log, evaluate, checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from duda.data.classes import CLASS_NAMES
from duda.data.loaders import EndlessLoader
from duda.engine.checkpoint import save_checkpoint
from duda.engine.evaluation import EvalSettings, evaluate
from duda.engine.metrics import summarize
from duda.logging import RunLogger
from duda.uda.method import Method


@dataclass
class Schedule:
    max_iters: int
    log_interval: int
    eval_interval: int
    checkpoint_interval: int

    def due(self, it: int, interval: int) -> bool:
        """Whether iteration `it` (1-based count of finished steps) ends on this interval."""
        return it == self.max_iters or (interval > 0 and it % interval == 0)


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


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


class Trainer:
    def __init__(
        self,
        method: Method,
        source: EndlessLoader,
        target: EndlessLoader | None,
        val: DataLoader,
        schedule: Schedule,
        eval_settings: EvalSettings,
        logger: RunLogger,
        run_dir: Path,
        device: torch.device,
        model_name: str,
        config: dict[str, Any],
        progress: bool = True,
        skipped: Callable[[], int] | None = None,
    ):
        self.method = method
        self.source, self.target, self.val = source, target, val
        self.schedule = schedule
        self.eval_settings = eval_settings
        self.logger = logger
        self.run_dir = Path(run_dir)
        self.device = device
        self.model_name = model_name
        self.config = config
        self.progress = progress
        self.skipped = skipped  # bad files left out so far (dataset.on_bad_sample=skip)
        self.last_eval: dict[str, Any] | None = None

    def fit(self) -> dict[str, Any]:
        s = self.schedule
        sums: dict[str, torch.Tensor] = {}
        window_start, window_iters = time.perf_counter(), 0
        bar = tqdm(total=s.max_iters, desc="train", unit="it", disable=not self.progress)
        for it in range(1, s.max_iters + 1):
            source = _to_device(next(self.source), self.device)
            target = _to_device(next(self.target), self.device) if self.target else None
            logs = self.method.train_step(source, target, it - 1)
            for k, v in logs.items():  # summed on the device; read back only at log time
                sums[k] = sums[k] + v.detach() if k in sums else v.detach().clone()
            window_iters += 1
            bar.update(1)

            if s.due(it, s.log_interval):
                elapsed = time.perf_counter() - window_start
                means = window_means(sums, window_iters)
                means["lr"] = self.method.current_lr()
                means["it_per_s"] = window_iters / max(elapsed, 1e-9)
                if self.skipped is not None:
                    means["data/skipped"] = self.skipped()
                bar.set_postfix(loss=f"{means.get('loss/total', float('nan')):.3f}")
                self.logger.log_train(means, step=it)
                sums.clear()
                window_start, window_iters = time.perf_counter(), 0
            if s.due(it, s.eval_interval):
                self._evaluate(it, bar)
            if s.due(it, s.checkpoint_interval):
                self._checkpoint(it)
        bar.close()
        return self._finish()

    def _evaluate(self, it: int, bar: tqdm) -> None:
        result = evaluate(
            self.method.eval_model(), self.val, CLASS_NAMES, self.device, self.eval_settings
        )
        self.last_eval = {"iteration": it, **result}
        self.logger.log_eval(result, step=it)
        bar.write(f"[iter {it}] target val mIoU {result['mIoU']:.2f} ({result['images']} images)")

    def _checkpoint(self, it: int) -> None:
        state = {"iteration": it, "method": self.method.state_dict(), "config": self.config}
        save_checkpoint(state, self.run_dir / "checkpoints" / f"iter_{it}.pt")

    def _finish(self) -> dict[str, Any]:
        last = self.last_eval  # always set: the last iteration is always evaluated
        save_checkpoint(
            {
                "iteration": last["iteration"],
                "model": self.method.eval_model().state_dict(),
                "config": self.config,
                "class_names": list(CLASS_NAMES),
            },
            self.run_dir / "model_final.pt",
        )
        results = {
            "mIoU": last["mIoU"],
            "aAcc": last["aAcc"],
            "iou": last["iou"],
            "model": self.model_name,
            "iteration": last["iteration"],
            "eval_images": last["images"],
            **{k: last[k] for k in last.get("metrics", [])},
            "metrics": last.get("metrics"),
        }
        self.logger.log_results(results)
        return results
