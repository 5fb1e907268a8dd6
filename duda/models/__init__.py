"""Segmentation models: MiT / dilated ResNet / timm backbones; SegFormer, DAFormer and
DeepLabV2 heads; the config-driven memory/speed levers."""

from duda.models.backbones import build_backbone
from duda.models.build import build_model, build_segmentor
from duda.models.heads import build_head
from duda.models.levers import apply_levers
from duda.models.segmentor import Segmentor

__all__ = [
    "Segmentor",
    "apply_levers",
    "build_backbone",
    "build_head",
    "build_model",
    "build_segmentor",
]
