"""Segmentation models: MiT / timm backbones, SegFormer and DAFormer heads."""

from duda.models.backbones import build_backbone
from duda.models.build import build_segmentor
from duda.models.heads import build_head
from duda.models.segmentor import Segmentor

__all__ = ["Segmentor", "build_backbone", "build_head", "build_segmentor"]
