"""One object the trainer logs through: console, metrics.jsonl, results.json and W&B."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from duda.logging.local import JsonlWriter, write_json
from duda.logging.wandb_logger import WandbLogger, resolve_mode


class RunLogger:
    def __init__(self, run_dir: Path, wandb: WandbLogger | None = None):
        self.run_dir = Path(run_dir)
        self.metrics = JsonlWriter(self.run_dir / "metrics.jsonl")
        self.wandb = wandb

    def log_train(self, values: dict[str, float], step: int) -> None:
        """Loss terms, schedules and pseudo-label quality of one log window."""
        self.metrics.write({"iteration": step, "split": "train", **values})
        if self.wandb:
            self.wandb.log({f"train/{k}": v for k, v in values.items()}, step=step)

    def log_eval(self, result: dict[str, Any], step: int, prefix: str = "val") -> None:
        record = {"iteration": step, "split": prefix, **result}
        self.metrics.write(record)
        if self.wandb:
            scalars = {f"{prefix}/mIoU": result["mIoU"], f"{prefix}/aAcc": result["aAcc"]}
            scalars.update(
                {f"{prefix}/iou/{k}": v for k, v in result["iou"].items() if not math.isnan(v)}
            )
            self.wandb.log(scalars, step=step)
            self.wandb.log_iou(prefix, result["iou"], step=step)

    def log_results(self, results: dict[str, Any]) -> None:
        write_json(self.run_dir / "results.json", results)
        if self.wandb:
            self.wandb.summary({k: v for k, v in results.items() if k != "iou"})

    def finish(self) -> None:
        if self.wandb:
            self.wandb.finish()


def build_run_logger(
    cfg: Any, run_dir: Path, config_dict: dict[str, Any], env_mode: str | None, has_key: bool
) -> tuple[RunLogger, str]:
    """Returns the logger and a one-line note for the console about where W&B data goes."""
    if cfg.name == "none":
        return RunLogger(run_dir), "W&B off (logger=none); metrics in metrics.jsonl"
    if cfg.name != "wandb":
        raise ValueError(f"unknown logger '{cfg.name}'; expected wandb or none")
    mode = resolve_mode(cfg.mode, env_mode, has_key)
    if mode == "disabled":
        return RunLogger(run_dir), "W&B disabled; metrics in metrics.jsonl"
    name = config_dict.get("run_name")
    group = cfg.group or (name.rsplit("_s", 1)[0] if name else None)  # seeds aggregate
    wandb = WandbLogger(
        run_dir, config_dict, cfg.project, name, mode, cfg.entity, group, list(cfg.tags)
    )
    if mode == "offline":
        note = (
            "W&B: no API key found, logging offline to "
            f"{run_dir / 'wandb'} (upload later with `wandb sync {run_dir}/wandb/offline-run-*`)"
            if not has_key
            else f"W&B offline in {run_dir / 'wandb'}"
        )
    else:
        note = f"W&B online: {getattr(wandb.run, 'url', '')}"
    return RunLogger(run_dir, wandb), note
