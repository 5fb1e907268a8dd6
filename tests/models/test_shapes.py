"""Shapes, channel bookkeeping and factory errors of the segmentation models."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from duda.models import Segmentor, build_backbone, build_head, build_segmentor

NUM_CLASSES = 7
HEADS = ("segformer", "daformer")
# Published widths (SegFormer paper, Table 6).
MIT_CHANNELS = {
    "mit_b0": [32, 64, 160, 256],
    **{f"mit_b{i}": [64, 128, 320, 512] for i in range(1, 6)},
}
MIT_DEPTHS = {
    "mit_b0": [2, 2, 2, 2],
    "mit_b1": [2, 2, 2, 2],
    "mit_b2": [3, 4, 6, 3],
    "mit_b3": [3, 4, 18, 3],
    "mit_b4": [3, 8, 27, 3],
    "mit_b5": [3, 6, 40, 3],
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _segmentor(backbone: str, head: str, **head_kwargs: object) -> Segmentor:
    return build_segmentor(
        {"name": backbone, "pretrained": None, "drop_path_rate": 0.1},
        {"name": head, "embed_dim": 64, "dropout": 0.1, **head_kwargs},
        NUM_CLASSES,
    )


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("variant", ["mit_b0", "mit_b1", "mit_b2"])
def test_mit_segmentor_forward_and_predict(variant: str, head: str) -> None:
    model = _segmentor(variant, head).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
        full = model.predict(x)
    assert [f.shape[1] for f in feats] == MIT_CHANNELS[variant]
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert logits.shape == (1, NUM_CLASSES, 16, 24)
    assert full.shape == (1, NUM_CLASSES, 64, 96)
    assert torch.isfinite(full).all()


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("variant", ["mit_b3", "mit_b4"])
def test_large_mit_variants_build(variant: str, head: str) -> None:
    model = _segmentor(variant, head)
    assert model.backbone.channels == MIT_CHANNELS[variant]
    assert model.backbone.strides == [4, 8, 16, 32]
    depths = [len(getattr(model.backbone, f"block{i}")) for i in range(1, 5)]
    assert depths == MIT_DEPTHS[variant]


def test_mit_b5_builds_with_both_heads_and_runs_once() -> None:
    backbone = build_backbone("mit_b5")
    assert backbone.channels == MIT_CHANNELS["mit_b5"]
    assert [len(getattr(backbone, f"block{i}")) for i in range(1, 5)] == MIT_DEPTHS["mit_b5"]
    daformer = build_head("daformer", backbone.channels, NUM_CLASSES, embed_dim=64)
    assert Segmentor(backbone, daformer) is not None
    model = Segmentor(backbone, build_head("segformer", backbone.channels, NUM_CLASSES)).eval()
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, NUM_CLASSES, 64, 64)


@pytest.mark.parametrize("head", HEADS)
def test_arbitrary_input_size(head: str) -> None:
    model = _segmentor("mit_b0", head).eval()
    x = torch.randn(2, 3, 65, 97)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
        full = model.predict(x)
    # Overlapping patch embeddings round up: ceil(65/4)=17, ceil(17/2)=9, 5, 3.
    assert [tuple(f.shape[-2:]) for f in feats] == [(17, 25), (9, 13), (5, 7), (3, 4)]
    assert logits.shape == (2, NUM_CLASSES, 17, 25)
    assert full.shape == (2, NUM_CLASSES, 65, 97)


def test_mit_parameter_names_follow_official_checkpoints() -> None:
    names = set(build_backbone("mit_b0").state_dict())
    expected = {
        "patch_embed1.proj.weight",
        "patch_embed4.norm.bias",
        "block1.0.norm1.weight",
        "block1.0.attn.q.weight",
        "block1.0.attn.kv.bias",
        "block1.0.attn.proj.weight",
        "block1.0.attn.sr.weight",
        "block3.1.attn.norm.weight",
        "block2.1.norm2.bias",
        "block2.1.mlp.fc1.weight",
        "block2.1.mlp.dwconv.dwconv.weight",
        "block4.1.mlp.fc2.bias",
        "norm1.weight",
        "norm4.bias",
    }
    assert expected <= names
    # sr_ratio is 1 in the last stage: no reduction conv and no extra norm there.
    assert not any(n.startswith(("block4.0.attn.sr", "block4.0.attn.norm")) for n in names)
    backbone = build_backbone("mit_b0")
    assert backbone.patch_embed1.proj.kernel_size == (7, 7)
    assert backbone.patch_embed1.proj.stride == (4, 4)
    assert backbone.patch_embed2.proj.kernel_size == (3, 3)
    assert backbone.patch_embed2.proj.padding == (1, 1)


def test_drop_path_increases_linearly_over_all_blocks() -> None:
    backbone = build_backbone("mit_b2", drop_path_rate=0.3)
    rates = [
        getattr(blk.drop_path, "drop_prob", 0.0)
        for i in range(1, 5)
        for blk in getattr(backbone, f"block{i}")
    ]
    expected = torch.linspace(0, 0.3, 16).tolist()
    assert rates == pytest.approx(expected)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize(
    ("name", "channels"),
    # Names the project does not register go to timm as they are (resnet18/50/101 are the
    # project's dilated v1c networks, see test_deeplabv2.py).
    [("resnet34", [64, 128, 256, 512]), ("mobilenetv3_small_100", [16, 24, 48, 576])],
)
def test_timm_backbones(name: str, channels: list[int], head: str) -> None:
    model = _segmentor(name, head).eval()
    assert model.backbone.channels == channels
    assert model.backbone.strides == [4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
        full = model.predict(x)
    assert [f.shape[1] for f in feats] == channels
    assert logits.shape == (1, NUM_CLASSES, 16, 24)
    assert full.shape == (1, NUM_CLASSES, 64, 96)


def test_unknown_backbone_is_reported() -> None:
    with pytest.raises(ValueError, match="timm") as err:
        build_backbone("definitely_not_a_model")
    message = str(err.value)
    assert "definitely_not_a_model" in message
    assert all(f"mit_b{i}" in message for i in range(6))


def test_unknown_head_is_reported() -> None:
    with pytest.raises(ValueError, match="upernet") as err:
        build_head("upernet", [32, 64, 160, 256], NUM_CLASSES)
    assert "segformer" in str(err.value)
    assert "daformer" in str(err.value)


def test_build_from_dictconfig() -> None:
    cfg = OmegaConf.create(
        {
            "backbone": {"name": "mit_b0", "pretrained": None, "drop_path_rate": 0.0},
            "head": {"name": "daformer", "embed_dim": 32, "dropout": 0.0, "dilations": [1, 2]},
        }
    )
    model = build_segmentor(cfg.backbone, cfg.head, num_classes=3).eval()
    assert len(model.head.aspp.branches) == 2
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3, 8, 8)


def test_param_groups_split_lr_and_weight_decay() -> None:
    model = _segmentor("mit_b0", "daformer")
    groups = model.param_groups(lr=6e-5, weight_decay=0.01, head_lr_mult=10.0)
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    seen: list[int] = []
    for group in groups:
        for p in group["params"]:
            seen.append(id(p))
            assert group["lr"] == pytest.approx(6e-5 if id(p) in backbone_ids else 6e-4)
            assert group["weight_decay"] == (0.0 if p.ndim <= 1 else 0.01)
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    torch.optim.AdamW(groups)  # accepted as-is
