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


def plain(value: object) -> object:
    """An enum field's string (OmegaConf hands enum fields back as Enum members), else as is."""
    return getattr(value, "value", value)


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    """A nested config container as `{"a.b.c": leaf}`: lists are leaves, and so is an empty
    mapping (so a node set to `{}` on one side of a comparison still shows)."""
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for key, value in tree.items():
            out |= flatten(value, f"{prefix}{key}.")
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): tree}


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    auto = "auto"  # bf16 where the device computes it natively (duda/engine/device.py)


class EvalMode(str, Enum):
    whole = "whole"
    slide = "slide"


class DomainKind(str, Enum):
    gta = "gta"
    synthia = "synthia"
    cityscapes = "cityscapes"
    acdc = "acdc"
    darkzurich = "darkzurich"


class Metric(str, Enum):
    """Class subsets a benchmark reports (`duda/data/classes.py: CLASS_SUBSETS`)."""

    mIoU19 = "mIoU19"
    mIoU16 = "mIoU16"  # SYNTHIA: without terrain, truck, train
    mIoU13 = "mIoU13"  # SYNTHIA: also without wall, fence, pole


class OnBadSample(str, Enum):
    skip = "skip"  # warn, leave the file out and count it in the run log
    error = "error"  # stop with the file's name


@dataclass
class BackboneConfig:
    """`duda/models/backbones.py`: MiT-B0…B5, dilated resnet18/50/101 or any timm
    `features_only` model by name."""

    name: str = "mit_b0"
    pretrained: str | None = None  # path to a local checkpoint; nothing is downloaded
    drop_path_rate: float = 0.1
    output_stride: int | None = None  # None: the backbone's own (8 for resnet*, 32 otherwise)


@dataclass
class HeadConfig:
    """`duda/models/heads.py`: `segformer` (all-MLP), `daformer` (ASPP fusion) or `deeplabv2`
    (summed dilated 3x3 classifiers). An option left None takes the head's own default; one the
    head does not have is an error."""

    name: str = "segformer"
    embed_dim: int | None = None  # segformer, daformer (default 256)
    dropout: float | None = None  # segformer, daformer (default 0.1)
    dilations: list[int] | None = None  # daformer (1,6,12,18), deeplabv2 (6,12,18,24)


@dataclass
class NetworkConfig:
    """A backbone + head pair, e.g. DUDA's large teacher/student architecture."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass
class ModelConfig:
    """`duda/models/build.py: build_model`: the segmentor, then the levers of `levers.py`.

    `backbone` + `head` are the deployed (small) network of every method; `large` is DUDA's
    teacher / large-student architecture (`model/large=mit_b5`), unused by other methods."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    large: NetworkConfig | None = None
    channels_last: bool = False  # NHWC parameters (faster convs under bf16 on tensor cores)
    grad_checkpointing: bool = False  # recompute backbone activations in backward
    compile: bool = False  # nn.Module.compile() of the segmentor (state_dict keys unchanged)


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
    # ACDC: any of fog, night, rain, snow; Dark Zurich: night, twilight, day; `all` = every one
    conditions: list[str] = field(default_factory=lambda: ["all"])
    # [top, bottom, left, right] px at file resolution where pseudo-labels are not trusted
    # (`valid` mask of training samples, `duda/data/transforms.py`); None trusts every pixel
    pseudo_margins: list[int] | None = None


@dataclass
class RCSConfig:
    """`duda/data/rcs.py`: rare-class sampling of the source training set (reference §6)."""

    enabled: bool = False
    temperature: float = 0.01  # P(c) = softmax((1 - f_c) / T); large T -> uniform over classes
    min_pixels: int = 3000  # a file is a candidate for class c with more pixels of c than this
    min_crop_ratio: float = 0.5  # re-crop until the crop holds > min_pixels * ratio pixels of c


@dataclass
class DatasetConfig:
    name: str = MISSING
    num_classes: int = 19
    source: DomainConfig = field(default_factory=DomainConfig)
    target: DomainConfig = field(default_factory=DomainConfig)
    rcs: RCSConfig = field(default_factory=RCSConfig)
    synth: SynthConfig | None = None
    # reported on the target's val split; the first is the run's headline `mIoU`
    metrics: list[Metric] = field(default_factory=lambda: [Metric.mIoU19])
    on_bad_sample: OnBadSample = OnBadSample.skip  # unreadable/mismatched files: skip | error


@dataclass
class MixConfig:
    """`duda/uda/mixing.py`: ClassMix + colour jitter and blur on the mixed image."""

    jitter_p: float = 0.8
    jitter_strength: float = 0.2
    blur_p: float = 0.5
    reference_quirks: bool = False  # ClassMix classes drawn from the whole batch (DAFormer #19)


@dataclass
class FeatureDistanceConfig:
    """`duda/uda/feature_distance.py`: pull thing-class features towards the ImageNet model's."""

    enabled: bool = False
    classes: list[int] = field(default_factory=lambda: [6, 7, 11, 12, 13, 14, 15, 16, 17, 18])
    min_ratio: float = 0.75


@dataclass
class MICConfig:
    """`duda/uda/masking.py`: masked-image consistency on block-masked target crops."""

    enabled: bool = False
    block_size: int = 32  # 32 px at 512 crops, 64 at 1024
    ratio: float = 0.7


@dataclass
class UDAConfig:
    """`duda/uda/`: the adaptation method; `source_only` trains on labelled source alone,
    `dacs`/`daformer`/`mic` are EMA self-training with more components switched on."""

    name: str = "source_only"
    base: str | None = None  # `duda`: the large pair's method, daformer | mic
    ema_alpha: float = 0.999
    ema_buffers: bool = False  # the reference averages parameters only
    teacher_bn_train: bool = True  # the reference teacher normalises with target-batch stats
    pseudo_threshold: float = 0.968
    per_image_confidence: bool = False  # the reference: one confidence weight per batch
    log_pl_quality: bool = True  # load target train labels, when they exist, for logging only
    mix: MixConfig = field(default_factory=MixConfig)
    fd: FeatureDistanceConfig = field(default_factory=FeatureDistanceConfig)
    mic: MICConfig = field(default_factory=MICConfig)


@dataclass
class ScheduleConfig:
    """`duda/distill/schedules.py`: how the KD weight λ_kd(t) grows (`conf/distill/schedule/`)."""

    name: str = "linear"  # linear | cosine | step | constant
    ramp_start: int = 0
    ramp_end: int | None = None  # None = distill.pre_iters


@dataclass
class FusionConfig:
    """`duda/distill/fusion.py`: how teacher probability maps are fused (`conf/distill/fusion/`)."""

    name: str = "mean"  # mean | max_confidence | weighted
    weights: list[float] | None = None  # `weighted`: teacher first, then extra_teachers in order


@dataclass
class ExtraTeacherConfig:
    """A frozen large network used only in stage-2 multi-teacher fusion."""

    checkpoint: str = MISSING
    model: ModelConfig | None = None  # None = the same architecture as the teacher


@dataclass
class InconsistencyConfig:
    """`duda/distill/inconsistency.py`: class weights from student–pseudo-label disagreement."""

    enabled: bool = True
    momentum: float = 0.99
    gamma: float = 1.0
    clip: list[float] = field(default_factory=lambda: [0.1, 10.0])
    normalize: str = "classes"  # or "pixels": mean weight 1 over each batch's labelled pixels


@dataclass
class FinetuneConfig:
    """Stage 2 (after `pre_iters`): only the small student trains."""

    update_teacher: bool = False
    source_weight: float = 1.0
    mix: bool = False  # ClassMix + jitter/blur on the student's stage-2 target crops, as stage 1


@dataclass
class DistillConfig:
    """`duda/distill/`: knowledge distillation into the small student (`none` turns it off).

    Every knob and which of them come from the paper: docs/method.md.
    """

    name: str = "none"
    pre_iters: int = 0  # stage-1 (pre-adaptation) length; stage 2 runs to trainer.max_iters
    tau: float = 1.0
    kd_weight: float = 1.0
    pl_ramp: bool = False  # ramp the student's hard pseudo-label CE weight with the KD schedule
    student_in_stage1: bool = True  # false: the student waits for stage 2 (no pre-adaptation)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    extra_teachers: list[ExtraTeacherConfig] = field(default_factory=list)
    inconsistency: InconsistencyConfig = field(default_factory=InconsistencyConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


@dataclass
class LossConfig:
    """Weights of the loss terms, one key per pure loss function."""

    source: float = 1.0
    mix: float = 1.0  # ClassMix CE with pseudo-labels
    fd: float = 0.005  # ImageNet feature distance (when uda.fd.enabled)
    mic: float = 1.0  # masked-image consistency (when uda.mic.enabled)
    kd: float = 1.0  # DUDA soft distillation term (on top of the schedule's λ_kd(t))
    inconsistency: float = 1.0  # DUDA stage-2 class-weighted pseudo-label CE


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
    checkpoint_interval: int = 1000  # iterations between checkpoints/iter_N.pt
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = Precision.fp32
    eval_mode: EvalMode = EvalMode.whole
    eval_crop_hw: list[int] | None = None  # slide window; None = the target training crop
    eval_stride_hw: list[int] | None = None  # None = half the window, as the reference
    eval_batch_size: int = 1
    eval_max_images: int | None = None
    progress: bool = True
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    # Resuming (README "Resuming and preemption"): `none` starts at iteration 0; `auto` continues
    # from the newest valid checkpoints/iter_N.pt of this run directory (none there: starts
    # fresh), so a requeued job picks up where it stopped; a path continues from that file.
    resume: str = "none"
    keep_checkpoints: int = 3  # newest checkpoints/iter_N.pt kept; 0 keeps every one
    # stop after this many non-finite (inf/NaN loss or gradient) steps in a row, each of which
    # is skipped; 0 skips them for ever
    max_nonfinite_steps: int = 5


@dataclass
class LoggerConfig:
    """`duda/logging/`: Weights & Biases (`wandb`) or nothing beyond the local files (`none`)."""

    name: str = "wandb"
    project: str = "duda"
    entity: str | None = None
    mode: str = "auto"  # auto (online with an API key, else offline) | online | offline | disabled
    group: str | None = None  # None: the run name without its seed + a hash of the settings
    tags: list[str] = field(default_factory=list)  # added to the per-component tags
    # target image / pseudo-label / prediction / label panels every N iterations (0 = off)
    log_image_interval: int = 0
    log_image_count: int = 2  # target crops per panel
    log_checkpoint: bool = False  # upload model_final.pt (the student) as a W&B artifact


@dataclass
class PathsConfig:
    data_dir: str = "${oc.env:DUDA_DATA,data}"
    weights_dir: str = "${oc.env:DUDA_WEIGHTS,weights}"  # ImageNet checkpoints, e.g. mit_b5.pth
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
