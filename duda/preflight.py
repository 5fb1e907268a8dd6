"""Combinations of settings that the typed schema cannot rule out, rejected before any work.

The schema (`duda/config.py`) catches unknown keys and wrong types one key at a time; these
checks look at several keys together (a method and the networks it needs, a benchmark and the
metrics it can report, values out of range), so that a run that could only fail, or report a
misleading number, stops at once with one message naming the keys and the way out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from duda.config import ConfigError, plain

DUDA_BASES = ("daformer", "mic")
SUBSET_METRICS = ("mIoU16", "mIoU13")  # subsets of the 19 Cityscapes classes


def check_combinations(cfg: Any) -> None:
    """Raise ConfigError for the first incompatible combination in a composed config."""
    for check in (_trainer, _method, _metrics):
        check(cfg)


def _trainer(cfg: Any) -> None:
    t = cfg.trainer
    for key in ("max_iters", "batch_size"):
        if t[key] < 1:
            raise ConfigError(f"trainer.{key}={t[key]}: must be at least 1")
    for key in ("log_interval", "eval_interval", "checkpoint_interval", "keep_checkpoints"):
        if t[key] < 0:
            raise ConfigError(f"trainer.{key}={t[key]}: must be 0 or more")
    if t.max_nonfinite_steps < 0:
        raise ConfigError(
            f"trainer.max_nonfinite_steps={t.max_nonfinite_steps}: must be 0 (never stop) or more"
        )
    if t.resume not in ("none", "auto") and not Path(t.resume).is_file():
        raise ConfigError(
            f"trainer.resume={t.resume}: expected none, auto, or the path of a checkpoint file "
            "(checkpoints/iter_N.pt of a run); no such file"
        )


def _method(cfg: Any) -> None:
    uda, distill = cfg.uda.name, cfg.distill.name
    if uda != "duda":
        if distill != "none":
            raise ConfigError(
                f"distill={distill} needs uda=duda (got uda={uda}); or use distill=none"
            )
        return
    if cfg.model.large is None:
        raise ConfigError(
            "uda=duda needs the large network (its teacher and large student): add "
            "model/large=<name>, e.g. model/large=mit_b5"
        )
    if distill != "duda":
        raise ConfigError("uda=duda needs distill=duda (the distillation settings)")
    if cfg.uda.base not in DUDA_BASES:
        raise ConfigError(f"uda.base={cfg.uda.base}: expected one of {list(DUDA_BASES)}")
    if not 0 <= cfg.distill.pre_iters <= cfg.trainer.max_iters:
        raise ConfigError(
            f"distill.pre_iters={cfg.distill.pre_iters} must lie in "
            f"0..trainer.max_iters={cfg.trainer.max_iters}"
        )


def _metrics(cfg: Any) -> None:
    d = cfg.dataset
    metrics = [plain(m) for m in d.metrics]
    if not metrics:
        raise ConfigError("dataset.metrics is empty; the first entry is the run's headline mIoU")
    if d.num_classes != 19:
        raise ConfigError(
            f"dataset.metrics={metrics} are means over Cityscapes' 19 classes and their "
            f"subsets, but dataset.num_classes={d.num_classes}"
        )
    if plain(d.source.kind) == "synthia" and metrics[0] not in SUBSET_METRICS:
        raise ConfigError(
            f"dataset.source.kind=synthia: SYNTHIA labels no terrain, truck or train, so its "
            f"benchmark's headline is mIoU16 (or mIoU13), not {metrics[0]}; put mIoU16 first "
            "in dataset.metrics (mIoU19 may follow, for reference)"
        )
