"""Weights & Biases, online or offline, never fatal to training.

Without an API key the run is logged offline into the run directory and can be uploaded later
with `wandb sync`; a W&B failure is reported once and training goes on without it.
"""

from __future__ import annotations

import netrc
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from duda.logging.panels import CLASS_LABELS, LABEL_VIEWS


def has_wandb_api_key(environ: Mapping[str, str], home: Path) -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` puts it)."""
    if environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc(str(home / ".netrc")).authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(requested: str, env_mode: str | None, has_key: bool) -> str:
    """`auto` means online with a key, offline without; an explicit WANDB_MODE wins over auto."""
    if requested not in ("auto", "online", "offline", "disabled"):
        raise ValueError(
            f"logger.mode '{requested}' unknown; expected auto, online, offline or disabled"
        )
    if requested != "auto":
        return requested
    if env_mode in ("online", "offline", "disabled", "dryrun"):
        return "offline" if env_mode == "dryrun" else env_mode
    return "online" if has_key else "offline"


def persistent_run_id(run_dir: Path) -> str:
    """The W&B run id of this run directory, made once and kept in `wandb/run_id`: a job that
    resumes in the same directory (a requeued SLURM job) continues the same W&B run."""
    path = run_dir / "wandb" / "run_id"
    if path.is_file():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:12]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


class WandbLogger:
    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        project: str,
        name: str,
        mode: str,
        entity: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
    ):
        import wandb  # imported lazily: it is slow to import and optional at run time

        self._wandb = wandb
        self.mode = mode
        self.run = wandb.init(
            project=project,
            entity=entity,
            name=name,
            group=group,
            tags=tags or None,
            config=config,
            dir=str(run_dir),
            mode=mode,
            id=persistent_run_id(Path(run_dir)),
            resume="allow",
            reinit="finish_previous",
        )
        self._failed = False

    @property
    def run_path(self) -> str | None:
        return getattr(self.run, "dir", None)

    def _guard(self, fn, *args, **kwargs) -> None:
        if self._failed:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:  # a logging outage must never end a day-long training run
            self._failed = True
            warnings.warn(
                f"W&B logging failed and is off for the rest of this run: {err}", stacklevel=2
            )

    def log(self, values: dict[str, Any], step: int) -> None:
        self._guard(self.run.log, values, step=step)

    def log_iou(self, prefix: str, iou: dict[str, float], step: int) -> None:
        """Per-class IoU as a table (for bar charts) next to the per-class scalars."""

        def table():
            rows = [[k, v] for k, v in iou.items()]
            data = self._wandb.Table(columns=["class", "IoU"], data=rows)
            self.run.log({f"{prefix}/iou_table": data}, step=step)

        self._guard(table)

    def log_panels(self, views: dict[str, np.ndarray], composite: np.ndarray, step: int) -> None:
        """Each crop as a `wandb.Image` with one mask layer per label map (toggled in the UI),
        and the whole panel in the Cityscapes palette."""

        def images():
            wandb = self._wandb
            crops = [
                wandb.Image(
                    image,
                    masks={
                        k: {"mask_data": views[k][i], "class_labels": CLASS_LABELS}
                        for k in LABEL_VIEWS
                        if k in views
                    },
                    caption=f"target crop {i}",
                )
                for i, image in enumerate(views["image"])
            ]
            caption = "image | " + " | ".join(k for k in LABEL_VIEWS if k in views)
            panel = wandb.Image(composite, caption=caption)
            self.run.log({"images/target": crops, "images/panel": panel}, step=step)

        self._guard(images)

    def log_artifact(self, path: Path, name: str, metadata: dict[str, Any]) -> None:
        def upload():
            artifact = self._wandb.Artifact(name, type="model", metadata=metadata)
            artifact.add_file(str(path))
            self.run.log_artifact(artifact)

        self._guard(upload)

    def summary(self, values: dict[str, Any]) -> None:
        self._guard(self.run.summary.update, values)

    def finish(self) -> None:
        self._guard(self.run.finish)
