"""`python -m duda.models.summary NAME [--size HxW] [--head H] [--json]`.

Parameters, forward FLOPs at an input size (counted by `torch.utils.flop_counter`, one
multiply-add = 2 FLOPs) and the stage channels/strides of a backbone, or of a whole segmentor
with `--head`. The figures a user needs to pick a student, without reading the code.

Models are built on the meta device: FLOPs and parameter counts depend on shapes only, so
nothing is allocated or computed and even ResNet-101 at output stride 8 is summarised at once.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from duda.models.backbones import build_backbone
from duda.models.build import build_segmentor
from duda.models.heads import HEADS


def count_flops(module: torch.nn.Module, size_hw: tuple[int, int]) -> int:
    """Forward FLOPs of one image, on the device of the module's parameters (meta works)."""
    device = next(module.parameters()).device
    x = torch.zeros(1, 3, *size_hw, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())


def summarize_model(
    name: str, size_hw: tuple[int, int] = (512, 512), head: str | None = None, num_classes: int = 19
) -> dict:
    with torch.device("meta"):
        return _summarize(name, size_hw, head, num_classes)


def _summarize(name: str, size_hw: tuple[int, int], head: str | None, num_classes: int) -> dict:
    backbone = build_backbone(name, drop_path_rate=0.0).eval()
    info = {
        "name": name,
        "size": list(size_hw),
        "params": sum(p.numel() for p in backbone.parameters()),
        "channels": list(backbone.channels),
        "strides": list(backbone.strides),
    }
    if head is None:
        info["flops"] = count_flops(backbone, size_hw)
        return info
    model = build_segmentor(
        {"name": name, "pretrained": None, "drop_path_rate": 0.0},
        {"name": head},  # the head's own defaults
        num_classes,
    ).eval()
    info["head"] = head
    info["segmentor_params"] = sum(p.numel() for p in model.parameters())
    info["flops"] = count_flops(model, size_hw)
    return info


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 512x512, got {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "name", help="mit_b0 ... mit_b5, resnet18/50/101 (dilated) or any timm features_only model"
    )
    parser.add_argument("--size", type=_parse_size, default=(512, 512), help="input HxW")
    parser.add_argument("--head", choices=sorted(HEADS), default=None)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    try:
        info = summarize_model(args.name, args.size, args.head)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{info['name']} at {args.size[0]}x{args.size[1]}")
    print(f"  backbone params  {info['params'] / 1e6:8.2f} M")
    if "segmentor_params" in info:
        print(f"  + {info['head']} head {info['segmentor_params'] / 1e6:8.2f} M")
    print(f"  forward FLOPs    {info['flops'] / 1e9:8.2f} G")
    print(f"  channels         {info['channels']}")
    print(f"  strides          {info['strides']}")
    if args.json:
        print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
