"""Run outputs: local JSON files (always) and Weights & Biases (when configured)."""

from duda.logging.environment import collect_environment
from duda.logging.local import JsonlWriter, write_json
from duda.logging.run_logger import RunLogger, build_run_logger
from duda.logging.wandb_logger import has_wandb_api_key

__all__ = [
    "JsonlWriter",
    "RunLogger",
    "build_run_logger",
    "collect_environment",
    "has_wandb_api_key",
    "write_json",
]
