"""DeepLabV2: the dilated ResNet "v1c" encoders and the summed-ASPP classifier head."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from duda.models import build_backbone, build_head, build_segmentor
from duda.models.heads import DeepLabV2Head


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# Published widths: BasicBlock stages end at 64..512 channels, Bottleneck stages at 4x that.
RESNET_CHANNELS = {
    "resnet18": [64, 128, 256, 512],
    "resnet50": [256, 512, 1024, 2048],
    "resnet101": [256, 512, 1024, 2048],
}


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_dilated_resnet_keeps_stride_8(name: str) -> None:
    backbone = build_backbone(name).eval()
    assert backbone.channels == RESNET_CHANNELS[name]
    assert backbone.strides == [4, 8, 8, 8]
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, 64, 96))
    sizes = [(16, 24), (8, 12), (8, 12), (8, 12)]
    assert [tuple(f.shape[1:]) for f in feats] == [
        (c, h, w) for c, (h, w) in zip(RESNET_CHANNELS[name], sizes, strict=True)
    ]


def test_resnet101_stage_depths_and_output_stride_knob() -> None:
    with torch.device("meta"):
        r101 = build_backbone("resnet101")
        r50_os16 = build_backbone("resnet50", output_stride=16)
    assert [len(getattr(r101.model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]
    assert r101.strides == [4, 8, 8, 8]
    assert r50_os16.strides == [4, 8, 16, 16]


def test_v1c_deep_stem_and_contracted_dilation() -> None:
    net = build_backbone("resnet50").model
    # v1c stem: three 3x3 convs of 32, 32 and 64 channels, the first one strided.
    stem = [m for m in net.conv1 if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size[0], c.out_channels) for c in stem] == [(3, 32), (3, 32), (3, 64)]
    assert stem[0].stride == (2, 2)
    # Plain projection shortcut (v1c), not v1d's average pool.
    assert not any(isinstance(m, nn.AvgPool2d) for m in net.layer2[0].downsample)
    # Strides 2 of layer3/4 become dilations 2/4; each stage's first 3x3 keeps the previous
    # dilation (mmseg `contract_dilation=True`).
    expected = {
        ("layer2", 0): ((2, 2), (1, 1)),
        ("layer3", 0): ((1, 1), (1, 1)),
        ("layer3", 1): ((1, 1), (2, 2)),
        ("layer4", 0): ((1, 1), (2, 2)),
        ("layer4", 2): ((1, 1), (4, 4)),
    }
    for (layer, block), (stride, dilation) in expected.items():
        conv = getattr(net, layer)[block].conv2
        assert (conv.stride, conv.dilation, conv.padding) == (stride, dilation, dilation)


def test_resnet_drop_path_from_config() -> None:
    net = build_backbone("resnet50", drop_path_rate=0.2).model
    assert net.layer4[-1].drop_path.drop_prob == pytest.approx(0.2)
    assert build_backbone("resnet50", drop_path_rate=0.0).model.layer4[-1].drop_path is None


def test_head_sums_dilated_branches_by_hand() -> None:
    head = DeepLabV2Head([1], num_classes=1, dilations=(1, 2))
    with torch.no_grad():
        for conv in head.branches:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    impulse = torch.zeros(1, 1, 7, 7)
    impulse[0, 0, 3, 3] = 1.0
    out = head([impulse])[0, 0]
    # A 3x3 all-ones kernel at dilation d spreads the impulse onto the 3x3 grid of spacing d
    # around it; the two grids meet only at the centre.
    expected = torch.zeros(7, 7)
    for d in (1, 2):
        for dy in (-d, 0, d):
            for dx in (-d, 0, d):
                expected[3 + dy, 3 + dx] += 1.0
    assert expected[3, 3] == 2
    torch.testing.assert_close(out, expected)


def test_head_reads_only_the_last_level_and_starts_calm() -> None:
    head = build_head("deeplabv2", [8, 16], num_classes=5)
    assert [m.dilation for m in head.branches] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    # Nothing but the four biased convs (no norm, no activation, no dropout).
    assert {type(m) for m in head.modules()} == {DeepLabV2Head, nn.ModuleList, nn.Conv2d}
    weights = torch.cat([c.weight.flatten() for c in head.branches])
    assert weights.std().item() == pytest.approx(0.01, rel=0.1)
    assert all(torch.count_nonzero(c.bias) == 0 for c in head.branches)
    last = torch.randn(1, 16, 9, 9)
    a = head([torch.randn(1, 8, 18, 18), last])
    b = head([torch.zeros(1, 8, 18, 18), last])
    assert a.shape == (1, 5, 9, 9)
    torch.testing.assert_close(a, b)


def test_deeplabv2_segmentor_gives_stride_8_logits_and_full_size_predictions() -> None:
    model = build_segmentor(
        {"name": "resnet18", "pretrained": None, "drop_path_rate": 0.0},
        {"name": "deeplabv2", "dilations": [6, 12]},
        num_classes=19,
    ).eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        logits = model(x)
        full = model.predict(x)
    assert logits.shape == (1, 19, 8, 10)
    assert full.shape == (1, 19, 64, 80)
    assert len(model.head.branches) == 2


def test_head_options_are_checked_by_name() -> None:
    with pytest.raises(ValueError, match=r"'deeplabv2' has no option\(s\) \['embed_dim'\]") as err:
        build_head("deeplabv2", [64], 19, embed_dim=256)
    assert "dilations" in str(err.value)
    with pytest.raises(ValueError, match="positive"):
        build_head("deeplabv2", [64], 19, dilations=[])


def test_output_stride_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"output_stride=8: mit_b0 has a fixed output stride"):
        build_backbone("mit_b0", output_stride=8)
    with pytest.raises(ValueError, match=r"'efficientvit_b1' rejected .*output_stride"):
        build_backbone("efficientvit_b1", output_stride=8)
