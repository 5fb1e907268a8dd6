"""What a run ran on: package versions, git commit, GPUs, host.

Written to `env.json` in the run directory and added to the W&B config, so a number can be
traced to the code and machine that produced it even when W&B is off.
"""

from __future__ import annotations

import platform
import socket
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "hydra-core",
    "omegaconf",
    "wandb",
    "albumentations",
    "numpy",
    "opencv-python-headless",
    "submitit",
    "hydra-submitit-launcher",
    "hydra-optuna-sweeper",
    "optuna",
)
# Environment variables that say which devices and which scheduler job a run had.
ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_RESTART_COUNT",
    "SUBMITIT_EXECUTOR",
)
REPO = Path(__file__).resolve().parents[2]


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """Commit, branch and whether tracked files differ from it (untracked files do not count:
    data and outputs live in the checkout)."""
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None}
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": _git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def gpu_state() -> dict[str, Any]:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {
        "count": count,
        "names": [torch.cuda.get_device_name(i) for i in range(count)],
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if count else None,
    }


def collect_environment(environ: Mapping[str, str], repo: Path = REPO) -> dict[str, Any]:
    """Everything `env.json` records; `environ` comes from the entry point (os.environ)."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "git": git_state(repo),
        "gpu": gpu_state(),
        "env": {k: environ[k] for k in ENV_KEYS if k in environ},
    }
