"""The iteration loop: draw paired batches, step the method, log, evaluate, checkpoint.

A checkpoint holds, besides the method's own state, everything the loop owns (the open log
window, the last evaluation, the divergence guard's counts), the loaders' positions and the
global RNGs, so that a run resumed from it continues exactly as the uninterrupted run
(`duda/engine/resume.py`). Signals and divergence end the loop early, with a checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from duda.data.classes import CLASS_NAMES
from duda.data.loaders import EndlessLoader
from duda.engine.checkpoint import (
    OutputWriteError,
    checkpoint_iteration,
    checksum_path,
    list_checkpoints,
    prune_checkpoints,
    save_checkpoint,
)
from duda.engine.evaluation import EvalSettings, evaluate
from duda.engine.guard import Diverged, DivergenceGuard, all_finite
from duda.engine.log_window import LogWindow
from duda.engine.preemption import Preempted, StopRequest
from duda.engine.resume import FORMAT, rng_state, set_rng_state
from duda.logging import RunLogger
from duda.uda.method import Method, refused_updates


@dataclass
class Schedule:
    max_iters: int
    log_interval: int
    eval_interval: int
    checkpoint_interval: int

    def due(self, it: int, interval: int) -> bool:
        """Whether iteration `it` (1-based count of finished steps) ends on this interval."""
        return it == self.max_iters or (interval > 0 and it % interval == 0)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


class Trainer:
    """Runs `method` from `self.iteration` (0, or a checkpoint's) to `schedule.max_iters`.

    Stops early, after writing a checkpoint, when `stop` reports a signal (`Preempted`) or
    when `max_nonfinite_steps` steps in a row were non-finite (`Diverged`).
    """

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
        keep_checkpoints: int = 0,
        max_nonfinite_steps: int = 0,
        stop: StopRequest | None = None,
        references: dict[str, Any] | None = None,
    ):
        self.method = method
        self.source, self.target, self.val = source, target, val
        self.schedule = schedule
        self.eval_settings = eval_settings
        self.logger = logger
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.device = device
        self.model_name = model_name
        self.config = config
        self.progress = progress
        self.skipped = skipped  # bad files left out so far (dataset.on_bad_sample=skip)
        self.keep_checkpoints = keep_checkpoints
        self.guard = DivergenceGuard(max_nonfinite_steps)
        self.stop = stop
        self.references = references or {}  # files the run reads but does not save
        self.iteration = 0  # finished steps
        self.window = LogWindow()
        self.last_eval: dict[str, Any] | None = None
        self._saved_at: int | None = None  # iteration of the newest checkpoint written

    def fit(self) -> dict[str, Any]:
        s = self.schedule
        bar = tqdm(
            total=s.max_iters,
            initial=self.iteration,
            desc="train",
            unit="it",
            disable=not self.progress,
        )
        try:
            self._stop_if_requested(bar)  # a signal during set-up
            for it in range(self.iteration + 1, s.max_iters + 1):
                source = _to_device(next(self.source), self.device)
                target = _to_device(next(self.target), self.device) if self.target else None
                self._step(source, target, it, bar)
                bar.update(1)

                if s.due(it, s.log_interval):
                    self._log(it, bar)
                if target is not None:  # image panels every logger.log_image_interval
                    self.logger.log_panels(self.method, target, step=it)
                if s.due(it, s.eval_interval):
                    self._evaluate(it, bar)
                if s.due(it, s.checkpoint_interval):
                    self._checkpoint(it, bar)
                if self.guard.tripped:
                    self._stop_diverged(it, bar)
                self._stop_if_requested(bar)
        finally:
            bar.close()
        return self._finish()

    def _step(
        self, source: dict[str, Any], target: dict[str, Any] | None, it: int, bar: tqdm
    ) -> None:
        """One method step, checked by the divergence guard (one device sync for the losses;
        the optimizers check their gradients themselves, `duda.optim.FiniteAdamW`)."""
        refused = refused_updates(self.method)
        logs = self.method.train_step(source, target, it - 1)
        self.iteration = it
        if self.guard.observe(logs, refused_updates(self.method) > refused, it):
            self.window.add(logs)
            return
        self.window.nonfinite += 1
        bar.write(
            f"[iter {it}] non-finite loss or gradient: update skipped "
            f"({self.guard.in_row} in a row)"
        )

    def _log(self, it: int, bar: tqdm) -> None:
        means = self.window.means()
        means["lr"] = self.method.current_lr()
        if self.skipped is not None:
            means["data/skipped"] = self.skipped()
        bar.set_postfix(loss=f"{means.get('loss/total', float('nan')):.3f}")
        self.logger.log_train(means, step=it)
        self.window = LogWindow()

    def _evaluate(self, it: int, bar: tqdm) -> None:
        result = evaluate(
            self.method.eval_model(), self.val, CLASS_NAMES, self.device, self.eval_settings
        )
        self.last_eval = {"iteration": it, **result}
        self.logger.log_eval(result, step=it)
        bar.write(f"[iter {it}] target val mIoU {result['mIoU']:.2f} ({result['images']} images)")

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint_state(self, it: int) -> dict[str, Any]:
        """Everything the run needs to continue exactly after iteration `it`."""
        return {
            "format": FORMAT,
            "iteration": it,
            "method": self.method.state_dict(),
            "config": self.config,
            "loop": {
                "window": self.window.state_dict(),
                "last_eval": self.last_eval,
                "guard": self.guard.state_dict(),
            },
            "data": {
                "source": self.source.state_dict(),
                "target": self.target.state_dict() if self.target is not None else None,
            },
            "rng": rng_state(),
            "references": self.references,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint; the global RNGs last, as nothing may draw after them."""
        self.method.load_state_dict(state["method"])
        loop = state["loop"]
        self.window.load_state_dict(loop["window"], self.device)
        self.last_eval = loop["last_eval"]
        self.guard.load_state_dict(loop["guard"])
        self.source.load_state_dict(state["data"]["source"])
        if self.target is not None:
            self.target.load_state_dict(state["data"]["target"])
        self.iteration = self._saved_at = int(state["iteration"])
        set_rng_state(state["rng"])

    def _checkpoint(self, it: int, bar: tqdm) -> None:
        """The periodic checkpoint, held back during a run of non-finite steps so that the
        newest checkpoint always predates a divergence."""
        if self.guard.in_row:
            bar.write(
                f"[iter {it}] checkpoint postponed: the last {self.guard.in_row} steps were "
                "non-finite"
            )
            return
        self._save(it)

    def _newest_checkpoint(self, before: int | None = None) -> Path | None:
        for path in list_checkpoints(self.checkpoint_dir):
            complete = checksum_path(path).is_file()
            if complete and (before is None or checkpoint_iteration(path) < before):
                return path
        return None

    def _save(self, it: int, state: dict[str, Any] | None = None) -> Path | None:
        """Write `iter_<it>.pt` and prune old ones. A failed write (full disk, lost mount) is
        reported and training goes on: the previous checkpoint is untouched and still valid."""
        path = self.checkpoint_dir / f"iter_{it}.pt"
        if self._saved_at == it and path.is_file():
            return path
        try:
            save_checkpoint(state or self.checkpoint_state(it), path, checksum=True)
            self._saved_at = it
            prune_checkpoints(self.checkpoint_dir, self.keep_checkpoints)
        except OSError as err:
            previous = self._newest_checkpoint(before=it)
            warnings.warn(
                f"could not write checkpoint {path}: {err}. "
                f"{previous or 'No earlier checkpoint'} stays valid; training goes on",
                stacklevel=2,
            )
            return path if self._saved_at == it else None
        return path

    # -- early stops -----------------------------------------------------------------------
    def _stop_if_requested(self, bar: tqdm) -> None:
        if self.stop is None or not self.stop.requested:
            return
        path = None
        if self.iteration > 0:
            state = self.checkpoint_state(self.iteration)
            if self._saved_at == self.iteration or not self.guard.in_row or all_finite(state):
                path = self._save(self.iteration, state)
        bar.write(f"{self.stop.name} received: stopping after iteration {self.iteration}")
        raise Preempted(self.stop.name, self.iteration, path)

    def _stop_diverged(self, it: int, bar: tqdm) -> None:
        """Stop with the weights from before the divergence: the skipped steps changed none,
        so they are saved (with the data position past the bad batches) when everything in
        the state is finite; else the newest earlier checkpoint is the one to use."""
        first, n = self.guard.first_bad, self.guard.in_row
        state = self.checkpoint_state(it)
        state["loop"]["guard"] |= {"in_row": 0, "first_bad": None}  # a resumed run starts afresh
        path = self._save(it, state) if all_finite(state["method"]) else None
        if path is not None:
            where = (
                f"Wrote {path}: the weights from before iteration {first}, when the non-finite "
                "steps began (skipped steps change no weight; BatchNorm statistics still moved)"
            )
        else:
            earlier = self._newest_checkpoint(before=first)
            where = (
                f"The newest checkpoint from before the divergence: {earlier}"
                if earlier
                else "No checkpoint predates the divergence"
            )
        raise Diverged(
            f"training diverged: {n} non-finite steps in a row, iterations {first}..{it} "
            f"(trainer.max_nonfinite_steps={self.guard.max_in_row}). {where}. Lower "
            "optimizer.lr or check the data, then continue with trainer.resume=auto"
        )

    def _finish(self) -> dict[str, Any]:
        last = self.last_eval  # always set: the last iteration is always evaluated
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
        try:
            save_checkpoint(
                {
                    "iteration": last["iteration"],
                    "model": self.method.eval_model().state_dict(),
                    "config": self.config,
                    "class_names": list(CLASS_NAMES),
                },
                self.run_dir / "model_final.pt",
            )
            self.logger.log_results(results)
        except OSError as err:
            raise OutputWriteError(
                f"could not write the final outputs to {self.run_dir}: {err}. The training "
                f"checkpoint {self._newest_checkpoint()} is valid: make room, then rerun with "
                "trainer.resume=auto to write them"
            ) from err
        return results
