"""`python -m duda.train +experiment=NAME [overrides]`: compose the config, build, train."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home at import

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from duda.config import ConfigError, register_configs, validate  # noqa: E402
from duda.data.datasets import BadSampleError  # noqa: E402

register_configs()
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float:
    from duda.engine.run import run_training  # torch and friends load after composition
    from duda.logging import has_wandb_api_key

    try:
        validate(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    print(f"Run directory: {run_dir}")
    try:
        results = run_training(
            cfg,
            run_dir,
            wandb_env_mode=os.environ.get("WANDB_MODE"),
            has_wandb_key=has_wandb_api_key(os.environ, Path.home()),
        )
    # Missing datasets, statistics files or weights (FileNotFoundError and its subclasses
    # DatasetLayoutError, RCSStatsError) and unreadable samples end with the message alone.
    except (FileNotFoundError, BadSampleError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"Results: {run_dir / 'results.json'}")
    return results["mIoU"]  # the value Hydra sweepers (e.g. Optuna) optimise


if __name__ == "__main__":
    main()
