"""Weights & Biases, online or offline, never fatal to training.

Without an API key the run is logged offline into the run directory and can be uploaded later
with `wandb sync`; a W&B failure is reported once and training goes on without it.
"""

from __future__ import annotations

import netrc
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any


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
        table = self._wandb.Table(columns=["class", "IoU"], data=[[k, v] for k, v in iou.items()])
        self._guard(self.run.log, {f"{prefix}/iou_table": table}, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        self._guard(self.run.summary.update, values)

    def finish(self) -> None:
        self._guard(self.run.finish)
