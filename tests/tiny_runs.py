"""Multiruns of the real entry point on a tiny generated benchmark (for the slow sweep tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The smallest embedded benchmark a run can train on: 6 + 6 images, 2 val, 64×64 crops.
TINY_DATA = [
    "dataset.synth.source_count=6",
    "dataset.synth.target_count=6",
    "dataset.synth.val_count=2",
    "dataset.synth.size=[128,64]",
    "dataset.source.crop_hw=[64,64]",
    "dataset.target.crop_hw=[64,64]",
]

TINY_JOB = [
    *TINY_DATA,
    "trainer.max_iters=2",
    "trainer.batch_size=2",
    "trainer.num_workers=0",
    "trainer.progress=false",
    "trainer.threads=1",
]


def multirun(
    tmp_path: Path, *overrides: str, wandb_mode: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m duda.train -m OVERRIDES` with tiny jobs; the sweep goes to tmp_path/sweep;
    `env` adds environment variables."""
    cmd = [
        sys.executable, "-m", "duda.train", "-m", *overrides,
        f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *TINY_JOB,
    ]  # fmt: skip
    env = {
        **os.environ,
        "WANDB_MODE": wandb_mode,
        "WANDB_API_KEY": "",
        "HOME": str(tmp_path),
        **(env or {}),
    }
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
