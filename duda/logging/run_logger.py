"""One object the trainer logs through: console, metrics.jsonl, results.json and W&B."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

from PIL import Image

from duda.logging.local import JsonlWriter, write_json
from duda.logging.naming import run_group, run_tags
from duda.logging.panels import panel, target_views
from duda.logging.wandb_logger import WandbLogger, resolve_mode


class RunLogger:
    def __init__(
        self,
        run_dir: Path,
        wandb: WandbLogger | None = None,
        image_interval: int = 0,
        image_count: int = 2,
        checkpoint_artifact: str | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.metrics = JsonlWriter(self.run_dir / "metrics.jsonl")
        self.wandb = wandb
        self.image_interval = image_interval
        self.image_count = image_count
        self.checkpoint_artifact = checkpoint_artifact  # W&B artifact name of model_final.pt

    def log_train(self, values: dict[str, float], step: int) -> None:
        """Loss terms, schedules and pseudo-label quality of one log window."""
        self.metrics.write({"iteration": step, "split": "train", **values})
        if self.wandb:
            self.wandb.log({f"train/{k}": v for k, v in values.items()}, step=step)

    def log_panels(self, method: Any, target: dict[str, Any], step: int) -> None:
        """Every `image_interval` iterations: the panel of the target batch the step just
        trained on, as `panels/iter_<step>.png` and in W&B."""
        if self.image_interval <= 0 or step % self.image_interval:
            return
        views = target_views(method, target, step - 1, self.image_count)
        composite = panel(views)
        path = self.run_dir / "panels" / f"iter_{step}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(composite).save(path)
        if self.wandb:
            self.wandb.log_panels(views, composite, step=step)

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
        """results.json; in W&B the final figures (per-class IoU flattened) go to the run
        summary, and model_final.pt becomes an artifact when `logger.log_checkpoint`."""
        write_json(self.run_dir / "results.json", results)
        if not self.wandb:
            return
        summary = {k: v for k, v in results.items() if k != "iou"}
        summary |= {f"iou/{k}": v for k, v in results["iou"].items() if not math.isnan(v)}
        self.wandb.summary(summary)
        checkpoint = self.run_dir / "model_final.pt"
        if self.checkpoint_artifact and checkpoint.is_file():
            metadata = {k: results[k] for k in ("mIoU", "aAcc", "iteration", "model")}
            self.wandb.log_artifact(checkpoint, self.checkpoint_artifact, metadata)

    def finish(self) -> None:
        if self.wandb:
            self.wandb.finish()


def artifact_name(run_name: str) -> str:
    """W&B artifact names allow letters, digits, `-`, `_` and `.` only."""
    return re.sub(r"[^\w.-]", "-", f"{run_name}-student")


def build_run_logger(
    cfg: Any,
    run_dir: Path,
    config_dict: dict[str, Any],
    env_mode: str | None,
    has_key: bool,
    environment: dict[str, Any] | None = None,
) -> tuple[RunLogger, str]:
    """Returns the logger and a one-line note for the console about where W&B data goes.

    `environment` (see `environment.py`) is written to env.json whatever the logger; a W&B
    that cannot start is reported in the note and the run goes on without it.
    """
    run_dir = Path(run_dir)
    if environment is not None:
        write_json(run_dir / "env.json", environment)
    images = {
        "image_interval": cfg.get("log_image_interval", 0),
        "image_count": cfg.get("log_image_count", 2),
    }
    if cfg.name == "none":
        return RunLogger(run_dir, **images), "W&B off (logger=none); metrics in metrics.jsonl"
    if cfg.name != "wandb":
        raise ValueError(f"unknown logger '{cfg.name}'; expected wandb or none")
    mode = resolve_mode(cfg.mode, env_mode, has_key)
    if mode == "disabled":
        return RunLogger(run_dir, **images), "W&B disabled; metrics in metrics.jsonl"
    name = config_dict.get("run_name") or "run"
    group = cfg.group or run_group(config_dict)  # seeds of one setting share the group
    tags = run_tags(config_dict)
    wandb_config = config_dict | ({"environment": environment} if environment else {})
    try:
        wandb = WandbLogger(run_dir, wandb_config, cfg.project, name, mode, cfg.entity, group, tags)
    except Exception as err:  # no network, a bad key, a broken install: train without W&B
        warnings.warn(f"W&B could not start ({err}); training goes on without it", stacklevel=2)
        return RunLogger(run_dir, **images), f"W&B failed to start: {err}"
    checkpoint = artifact_name(name) if cfg.get("log_checkpoint") else None
    logger = RunLogger(run_dir, wandb, checkpoint_artifact=checkpoint, **images)
    if mode == "offline":
        note = (
            "W&B: no API key found, logging offline to "
            f"{run_dir / 'wandb'} (upload later with `wandb sync {run_dir}/wandb/offline-run-*`)"
            if not has_key
            else f"W&B offline in {run_dir / 'wandb'} (upload with `wandb sync`)"
        )
    else:
        note = f"W&B online: {getattr(wandb.run, 'url', '')}"
    return logger, note
