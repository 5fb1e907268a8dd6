"""A tiny DUDA run of the real training code, in this process or as a `duda.train` subprocess.

DUDA carries the most state across a checkpoint (three networks, two optimizers, the EMA
teacher, the stage switch, the inconsistency statistics, two loaders), so exact-resume tests
use it; a B0-sized "large" pair and 64×64 crops keep an iteration near 0.3 s on one CPU thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from tiny_runs import TINY_DATA

from duda.config import register_configs

REPO = Path(__file__).resolve().parents[2]
MAX_ITERS = 12
PRE_ITERS = 6  # stage 1, then stage 2 to MAX_ITERS

TINY_DUDA = [
    "+experiment=synth_duda",
    "model.large.backbone.name=mit_b0",
    f"distill.pre_iters={PRE_ITERS}",
    *TINY_DATA,
    f"trainer.max_iters={MAX_ITERS}",
    "trainer.batch_size=2",
    "trainer.num_workers=0",
    "trainer.log_interval=3",  # log windows that straddle the checkpoints every 2 iterations
    "trainer.eval_interval=6",
    "trainer.checkpoint_interval=2",
    "trainer.keep_checkpoints=0",
    "trainer.progress=false",
    "trainer.threads=1",
    "logger=none",
]

# The cheapest trainable run (one network), for the guards: 8 iterations, a checkpoint every 2.
TINY_SOURCE_ONLY = [
    "+experiment=synth_source_only",
    *[o for o in TINY_DUDA if o.startswith("dataset.") or o.startswith("trainer.")],
    "logger=none",
    "trainer.max_iters=8",
    "trainer.log_interval=2",
    "trainer.eval_interval=8",
]


def compose_tiny(data_dir: Path, *overrides: str, base: list[str] = TINY_DUDA):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(
            config_name="train", overrides=[*base, f"paths.data_dir={data_dir}", *overrides]
        )


def train_in_process(
    run_dir: Path, data_dir: Path, *overrides: str, base: list[str] = TINY_DUDA, **kwargs: Any
) -> dict[str, Any]:
    """`run_training` on the composed tiny config; torch's thread count is restored after."""
    from duda.engine.run import run_training

    threads = torch.get_num_threads()
    try:
        return run_training(compose_tiny(data_dir, *overrides, base=base), run_dir, **kwargs)
    finally:
        torch.set_num_threads(threads)


def start_train(run_dir: Path, data_dir: Path, log: Path, *overrides: str) -> subprocess.Popen:
    """`python -m duda.train` on the tiny config, stdout and stderr to `log`."""
    cmd = [
        sys.executable, "-m", "duda.train", *TINY_DUDA,
        f"paths.data_dir={data_dir}", f"hydra.run.dir={run_dir}", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def records(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl without the one figure that depends on the clock."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "it_per_s"} for line in lines]


def newest_checkpoint(run_dir: Path) -> int:
    """Iteration of the newest complete checkpoint (0: none yet)."""
    done = (run_dir / "checkpoints").glob("iter_*.pt.sha256")
    return max((int(p.name.split("_")[1].split(".")[0]) for p in done), default=0)


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Nested states equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"  # NaN == NaN here
