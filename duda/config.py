"""Typed schema of the Hydra config tree.

The schema is merged first into every composed config (``conf/train.yaml`` names it in its
defaults list), so a misspelt key or a value of the wrong type in a group file, an experiment or
a command-line override stops the run during composition, with Hydra naming the key, before any
data is touched. Each dataclass mirrors one config group (``conf/<group>/``) and the module it
configures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


class EvalMode(str, Enum):
    whole = "whole"
    slide = "slide"


class DomainKind(str, Enum):
    gta = "gta"
    cityscapes = "cityscapes"


@dataclass
class BackboneConfig:
    """`duda/models/backbones.py`: MiT-B0…B5 or any timm `features_only` model by name."""

    name: str = "mit_b0"
    pretrained: str | None = None  # path to a local checkpoint; nothing is downloaded
    drop_path_rate: float = 0.1


@dataclass
class HeadConfig:
    """`duda/models/heads.py`: `segformer` (all-MLP) or `daformer` (ASPP fusion)."""

    name: str = "segformer"
    embed_dim: int = 256
    dropout: float = 0.1
    dilations: list[int] | None = None  # ASPP rates of the daformer head


@dataclass
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass
class SynthConfig:
    """How to (re)generate the embedded benchmark when absent (`duda/data/synth.py`)."""

    seed: int = 0
    source_count: int = 500
    target_count: int = 500
    val_count: int = 100
    size: list[int] = field(default_factory=lambda: [256, 128])  # W, H as the CLI's WxH
    style: str = "day"


@dataclass
class DomainConfig:
    """One side of a benchmark pair, read by `duda/data/datasets.py`."""

    kind: DomainKind = MISSING
    root: str = MISSING
    train_split: str = "train"
    val_split: str = "val"
    resize_hw: list[int] | None = None  # resize before cropping; None keeps the file size
    crop_hw: list[int] = field(default_factory=lambda: [512, 512])
    cat_max_ratio: float = 1.0  # re-crop while one class covers more than this share


@dataclass
class DatasetConfig:
    name: str = MISSING
    num_classes: int = 19
    source: DomainConfig = field(default_factory=DomainConfig)
    target: DomainConfig = field(default_factory=DomainConfig)
    synth: SynthConfig | None = None


@dataclass
class UDAConfig:
    """`duda/uda/`: the adaptation method; `source_only` trains on labelled source alone."""

    name: str = "source_only"


@dataclass
class DistillConfig:
    """`duda/distill/`: knowledge distillation into the small student (`none` turns it off)."""

    name: str = "none"


@dataclass
class LossConfig:
    """Weights of the loss terms, one key per pure loss function."""

    source: float = 1.0


@dataclass
class OptimizerConfig:
    """`duda/optim.py`: AdamW with a faster head and no decay on norms and biases."""

    name: str = "adamw"
    lr: float = 6e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.01
    head_lr_mult: float = 10.0


@dataclass
class SchedulerConfig:
    """`duda/optim.py`: linear warm-up, then polynomial decay (mmcv `poly` + `linear`)."""

    name: str = "poly_warmup"
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    power: float = 1.0
    min_lr: float = 0.0


@dataclass
class TrainerConfig:
    """`duda/engine/trainer.py`: the loop, evaluation and checkpoint cadence."""

    max_iters: int = 40000
    batch_size: int = 2  # per domain: 2 source + 2 target crops as the reference
    num_workers: int = 4
    log_interval: int = 50
    eval_interval: int = 4000
    checkpoint_interval: int = 4000
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = Precision.fp32
    eval_mode: EvalMode = EvalMode.whole
    eval_crop_hw: list[int] | None = None  # slide window; None = the target training crop
    eval_stride_hw: list[int] | None = None  # None = half the window, as the reference
    eval_batch_size: int = 1
    eval_max_images: int | None = None
    progress: bool = True
    threads: int | None = None  # torch CPU threads; None leaves torch's default


@dataclass
class LoggerConfig:
    """`duda/logging/`: Weights & Biases (`wandb`) or nothing beyond the local files (`none`)."""

    name: str = "wandb"
    project: str = "duda"
    entity: str | None = None
    mode: str = "auto"  # auto (online with an API key, else offline) | online | offline | disabled
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    data_dir: str = "${oc.env:DUDA_DATA,data}"
    output_dir: str = "outputs"


@dataclass
class TrainConfig:
    seed: int = 0
    run_name: str = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    uda: UDAConfig = field(default_factory=UDAConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


def register_configs() -> None:
    """Make the schema available to `conf/train.yaml` as the `duda_schema` defaults entry."""
    ConfigStore.instance().store(name="duda_schema", node=TrainConfig)


class ConfigError(ValueError):
    """A composed config that does not fit the schema."""


def validate(cfg: DictConfig) -> None:
    """Re-check a composed config against the schema.

    Composition already rejects unknown keys and wrong types, except keys added with Hydra's
    `+key=value` form, which bypasses struct mode; merging into a fresh schema catches those too.
    """
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    try:
        OmegaConf.merge(OmegaConf.structured(TrainConfig), plain)
    except (ConfigKeyError, ValidationError) as err:
        raise ConfigError(f"{str(err).splitlines()[0]} (key '{err.full_key}')") from err
