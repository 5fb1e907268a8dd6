"""Every shipped `conf/model/backbone` x `conf/model/head` pair builds and predicts full size."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from duda.config import ModelConfig, register_configs
from duda.models import Segmentor, build_head
from duda.models.backbones import build_backbone
from duda.models.build import build_model

CONF = Path(__file__).resolve().parents[2] / "conf"
BACKBONES = sorted(p.stem for p in (CONF / "model/backbone").glob("*.yaml"))
HEADS = sorted(p.stem for p in (CONF / "model/head").glob("*.yaml"))
# Output strides as documented: dilated ResNets stop at 8, every other backbone at 32.
LAST_STRIDE = {name: 8 if name.startswith("resnet") else 32 for name in BACKBONES}
NUM_CLASSES = 5
SIZE = 64


def _model_cfg(backbone: str, head: str):
    """The `model` node as Hydra composes it: group files merged over the typed schema."""
    return OmegaConf.merge(
        OmegaConf.structured(ModelConfig),
        {
            "backbone": OmegaConf.load(CONF / f"model/backbone/{backbone}.yaml"),
            "head": OmegaConf.load(CONF / f"model/head/{head}.yaml"),
        },
    )


@cache
def _backbone(name: str) -> torch.nn.Module:
    # One encoder per file, shared by the four heads (eval, no grad: nothing is mutated).
    cfg = OmegaConf.to_container(_model_cfg(name, HEADS[0]).backbone)
    return build_backbone(cfg.pop("name"), **cfg).eval()


def test_shipped_files() -> None:
    assert {"resnet18", "resnet50", "resnet101", "efficientvit_b1"} <= set(BACKBONES)
    assert {"mobilenetv3_large_100", *(f"mit_b{i}" for i in range(6))} <= set(BACKBONES)
    assert HEADS == ["daformer", "deeplabv2", "segformer", "segformer768"]


# Each encoder is built once (about 1 s for MiT-B5 or ResNet-101 on an idle CPU core).
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("head", HEADS)
def test_pair_builds_and_upsamples_to_input(backbone: str, head: str) -> None:
    torch.manual_seed(0)
    cfg = _model_cfg(backbone, head)
    hd = {k: v for k, v in OmegaConf.to_container(cfg.head).items() if v is not None}
    net = _backbone(backbone)
    model = Segmentor(net, build_head(hd.pop("name"), net.channels, NUM_CLASSES, **hd)).eval()
    assert net.strides[-1] == LAST_STRIDE[backbone]
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        logits = model(x)
        full = model.predict(x)
    # SegFormer/DAFormer decode at the finest level, DeepLabV2 at the deepest.
    stride = LAST_STRIDE[backbone] if head == "deeplabv2" else 4
    assert logits.shape == (1, NUM_CLASSES, math.ceil(SIZE / stride), math.ceil(SIZE / stride))
    assert full.shape == (1, NUM_CLASSES, SIZE, SIZE)
    assert torch.isfinite(full).all()


def test_hydra_composes_resnet_deeplabv2_with_levers() -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "model/backbone=resnet18",
                "model/head=deeplabv2",
                "model.head.dilations=[6,12]",
                "model.grad_checkpointing=true",
                "model.channels_last=true",
            ],
        )
    assert cfg.model.backbone.output_stride == 8
    assert cfg.model.head.embed_dim is None  # not a deeplabv2 option: left unset
    model = build_model(cfg.model, num_classes=19)
    assert len(model.head.branches) == 2
    assert model.backbone.model.grad_checkpointing
    assert model.head.branches[0].weight.is_contiguous(memory_format=torch.channels_last)
