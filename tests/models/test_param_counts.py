"""Parameter counts against the figures published with SegFormer.

Counting needs no real weights, so the models are built on the meta device.
"""

from __future__ import annotations

import pytest
import torch

from duda.models import build_segmentor


@pytest.mark.parametrize(
    ("backbone", "embed_dim", "published"),
    [("mit_b0", 256, 3.7e6), ("mit_b5", 768, 84.7e6)],
)
def test_segformer_param_count_matches_paper(
    backbone: str, embed_dim: int, published: float
) -> None:
    with torch.device("meta"):
        model = build_segmentor(
            {"name": backbone, "pretrained": None, "drop_path_rate": 0.1},
            {"name": "segformer", "embed_dim": embed_dim, "dropout": 0.1},
            num_classes=19,
        )
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(published, rel=0.01)
