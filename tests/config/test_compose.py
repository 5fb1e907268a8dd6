"""Every experiment composes against the typed schema; bad overrides fail before any work."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from duda.config import ConfigError, register_configs, validate

CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

register_configs()


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(name):
    cfg = _compose([f"+experiment={name}"])
    # Resolving catches broken interpolations; the run name must exist for the run dir.
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert plain["run_name"].endswith("_s0")
    assert plain["dataset"]["num_classes"] == 19


def test_experiments_exist():
    assert {"synth_source_only", "gta_cs_mit_b0"} <= set(EXPERIMENTS)


def test_gta_cs_mit_b0_uses_real_roots_and_b0():
    cfg = _compose(["+experiment=gta_cs_mit_b0", "paths.data_dir=/datasets"])
    assert cfg.model.backbone.name == "mit_b0"
    assert cfg.dataset.source.root == "/datasets/gta"
    assert cfg.dataset.target.root == "/datasets/cityscapes"
    assert cfg.dataset.synth is None
    assert cfg.trainer.max_iters == 40000
    # DUDA: a MiT-B5 + DAFormer teacher pair distilled into MiT-B0 + SegFormer
    assert cfg.uda.name == "duda" and cfg.uda.base == "daformer" and cfg.distill.name == "duda"
    assert cfg.model.head.name == "segformer"
    assert cfg.model.large.backbone.name == "mit_b5" and cfg.model.large.head.name == "daformer"
    assert cfg.model.backbone.pretrained == "weights/mit_b0.pth"
    assert cfg.model.large.backbone.pretrained == "weights/mit_b5.pth"


@pytest.mark.parametrize(
    ("student", "backbone", "head"),
    [("efficientvit_b1", "efficientvit_b1", "segformer"), ("resnet18", "resnet18", "deeplabv2")],
)
def test_student_group_wins_over_the_experiment_network(student, backbone, head):
    cfg = _compose(["+experiment=synth_duda", f"model/student={student}", "model/large=resnet101"])
    assert (cfg.model.backbone.name, cfg.model.head.name) == (backbone, head)
    assert cfg.model.large.backbone.name == "resnet101"
    assert cfg.model.large.head.name == "deeplabv2"


def test_group_overrides_compose():
    cfg = _compose(["model/backbone=mit_b2", "model/head=daformer", "dataset=synth_night"])
    assert cfg.model.backbone.name == "mit_b2"
    assert list(cfg.model.head.dilations) == [1, 6, 12, 18]
    assert cfg.dataset.synth.style == "night"


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("trainer.max_iter=3", "max_iter"),
        ("trainer.max_iters=many", "max_iters"),
        ("trainer.precision=fp64", "precision"),
        ("dataset=nonexistent", "nonexistent"),
    ],
)
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["+experiment=synth_source_only", override])
    text = str(err.value) + str(err.value.__cause__)
    assert fragment in text


def test_experiment_without_plus_is_not_in_defaults():
    """The user-facing form is `+experiment=NAME`, so `experiment` must stay out of the defaults."""
    defaults = OmegaConf.load(CONF / "train.yaml").defaults
    assert not any("experiment" in str(d) for d in defaults)


def test_keys_added_with_plus_are_caught_by_validate():
    """`+key=value` bypasses struct mode during composition; validate() catches it."""
    cfg = _compose(["+experiment=synth_source_only", "+model.backbone.depth=3"])
    with pytest.raises(ConfigError, match="depth"):
        validate(cfg)
    validate(_compose(["+experiment=synth_source_only"]))


def test_the_embedded_duda_pair_is_the_base_uda_large_network():
    """The accuracy table compares DUDA's student with base UDA on the large network, so the two
    must be one architecture: SegFormer-B2, MiT-B2 with the paper's 768-channel decoder."""
    large = _compose(["+experiment=synth_daformer_mit_b2"]).model
    pair = _compose(["+experiment=synth_duda"]).model.large
    assert pair.backbone == large.backbone and pair.head == large.head
    assert (large.backbone.name, large.head.name, large.head.embed_dim) == (
        "mit_b2",
        "segformer",
        768,
    )
