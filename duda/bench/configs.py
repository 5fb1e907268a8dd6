"""Compose the project's Hydra configs from Python, as `python -m duda.train` would."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose(overrides: Sequence[str]) -> DictConfig:
    """The `train` config with these command-line overrides (e.g. `+experiment=synth_duda`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from duda.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))
