"""Checkpoint loading: formats, strict error reporting and refusal of unsafe pickles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from duda.models import build_backbone
from duda.models.mit import build_mit
from duda.models.weights import load_backbone_weights


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return model.eval()(x)


def _assert_same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.randn(1, 3, 64, 64)
    for fa, fb in zip(_outputs(a, x), _outputs(b, x), strict=True):
        assert torch.equal(fa, fb)


def test_round_trip(tmp_path: Path) -> None:
    src = build_mit("mit_b0")
    path = tmp_path / "mit_b0.pth"
    torch.save(src.state_dict(), path)
    dst = build_mit("mit_b0")
    assert not torch.equal(dst.block1[0].attn.kv.weight, src.block1[0].attn.kv.weight)
    assert load_backbone_weights(dst, path) == ([], [], [])
    _assert_same_outputs(src, dst)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: {"state_dict": sd}, id="state_dict"),
        pytest.param(lambda sd: {"model": sd}, id="model"),
        pytest.param(
            lambda sd: {
                "meta": {"epoch": 3},
                "state_dict": {
                    **{f"backbone.{k}": v for k, v in sd.items()},
                    "decode_head.conv_seg.weight": torch.zeros(19, 256, 1, 1),
                    "decode_head.conv_seg.bias": torch.zeros(19),
                },
            },
            id="mmseg_segmentor",
        ),
        pytest.param(
            lambda sd: {
                **sd,
                "head.weight": torch.zeros(1000, 256),
                "head.bias": torch.zeros(1000),
            },
            id="imagenet_classifier",
        ),
    ],
)
def test_published_wrappers_load(wrap, tmp_path: Path) -> None:
    src = build_mit("mit_b0")
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(src.state_dict()), path)
    dst = build_mit("mit_b0")
    load_backbone_weights(dst, path)
    _assert_same_outputs(src, dst)


def test_pretrained_through_factory(tmp_path: Path) -> None:
    src = build_backbone("mit_b0")
    path = tmp_path / "mit_b0.pth"
    torch.save({"state_dict": src.state_dict()}, path)
    _assert_same_outputs(src, build_backbone("mit_b0", pretrained=str(path)))


def test_pretrained_timm_backbone(tmp_path: Path) -> None:
    src = build_backbone("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(src.model.state_dict(), path)
    _assert_same_outputs(src, build_backbone("resnet18", pretrained=path))


def test_other_variant_shape_mismatch_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "mit_b1.pth"
    torch.save(build_mit("mit_b1").state_dict(), path)
    with pytest.raises(ValueError) as err:
        load_backbone_weights(build_mit("mit_b0"), path)
    message = str(err.value)
    assert str(path) in message
    assert "shape mismatches" in message
    assert "patch_embed1.proj.weight: checkpoint (64, 3, 7, 7) vs model (32, 3, 7, 7)" in message


def test_missing_and_unexpected_keys_are_reported(tmp_path: Path) -> None:
    # b2 has more blocks per stage than b1 at the same widths.
    deeper = tmp_path / "mit_b2.pth"
    torch.save(build_mit("mit_b2").state_dict(), deeper)
    with pytest.raises(ValueError) as err:
        load_backbone_weights(build_mit("mit_b1"), deeper)
    message = str(err.value)
    assert str(deeper) in message
    assert "unexpected keys (" in message
    assert "block1.2.attn.q.weight" in message
    assert "missing keys (0)" in message

    shallower = tmp_path / "mit_b1.pth"
    torch.save(build_mit("mit_b1").state_dict(), shallower)
    with pytest.raises(ValueError) as err:
        load_backbone_weights(build_mit("mit_b2"), shallower)
    message = str(err.value)
    b2_only = len(build_mit("mit_b2").state_dict()) - len(build_mit("mit_b1").state_dict())
    assert f"missing keys ({b2_only})" in message
    assert "..." in message  # more than ten: the list is truncated


def test_non_strict_returns_report_and_loads_the_rest(tmp_path: Path) -> None:
    src = build_mit("mit_b1")
    path = tmp_path / "mit_b1.pth"
    torch.save(src.state_dict(), path)
    dst = build_mit("mit_b2")
    report = load_backbone_weights(dst, path, strict=False)
    assert "block1.2.attn.q.weight" in report.missing
    assert report.unexpected == []
    assert report.mismatched == []
    assert torch.equal(dst.block3[1].mlp.fc1.weight, src.block3[1].mlp.fc1.weight)


def test_non_strict_skips_mismatched_shapes(tmp_path: Path) -> None:
    path = tmp_path / "mit_b1.pth"
    torch.save(build_mit("mit_b1").state_dict(), path)
    dst = build_mit("mit_b0")
    before = dst.patch_embed1.proj.weight.clone()
    report = load_backbone_weights(dst, path, strict=False)
    assert len(report.mismatched) > 0
    assert torch.equal(dst.patch_embed1.proj.weight, before)


class _Payload:
    """Pickles into a call that would create a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_arbitrary_pickled_objects_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": build_mit("mit_b0").state_dict(), "evil": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="refusing to load"):
        load_backbone_weights(build_mit("mit_b0"), path)
    assert not marker.exists()


# --- ResNet "v1c" and other timm checkpoints -------------------------------------------------


def _timm_classifier(name: str, **kwargs):
    """The full timm ImageNet model, classifier included, as timm checkpoint files hold it."""
    import timm

    return timm.create_model(name, pretrained=False, **kwargs).eval()


def _v1c(depth: int, **kwargs):
    # ResNet-C: timm's deep stem (3x3 convs of 32, 32, 64 channels) on a ResNet-`depth`.
    return _timm_classifier(f"resnet{depth}", stem_type="deep", stem_width=32, **kwargs)


def test_resnet_timm_checkpoint_round_trip(tmp_path: Path) -> None:
    full = _v1c(18, output_stride=8)
    path = tmp_path / "resnet18c.pth"
    torch.save(full.state_dict(), path)
    assert "fc.weight" in torch.load(path)  # the ImageNet classifier is in the file
    backbone = build_backbone("resnet18", pretrained=path, drop_path_rate=0.0).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        deepest = backbone(x)[-1]
        expected = full.forward_features(x)  # timm: the last stage, before pooling
    assert torch.equal(deepest, expected)


def test_resnet_mmseg_v1c_checkpoint_loads(tmp_path: Path) -> None:
    full = _v1c(18)
    # mmseg ResNetV1c names, written out by hand: the deep stem with its last BN is `stem.N`,
    # the rest is shared with timm. Older files lack the BN step counters.
    stem = {"conv1.0": "stem.0", "conv1.1": "stem.1", "conv1.3": "stem.3", "conv1.4": "stem.4",
            "conv1.6": "stem.6", "bn1": "stem.7"}  # fmt: skip
    state = {}
    for key, value in full.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        module, _, leaf = key.rpartition(".")
        state[f"{stem.get(module, module)}.{leaf}"] = value
    assert "stem.7.running_var" in state and "layer4.1.bn2.weight" in state
    path = tmp_path / "resnet18_v1c.pth"
    torch.save({"state_dict": state}, path)
    backbone = build_backbone("resnet18", pretrained=path)
    assert torch.equal(backbone.model.bn1.running_var, full.bn1.running_var)
    assert torch.equal(backbone.model.conv1[6].weight, full.conv1[6].weight)
    assert torch.equal(backbone.model.layer3[1].conv2.weight, full.layer3[1].conv2.weight)


def test_flattened_timm_features_load_a_full_checkpoint(tmp_path: Path) -> None:
    # EfficientViT's features_only wrapper renames `stem.in_conv` to `stem_in_conv`.
    full = _timm_classifier("efficientvit_b1")
    path = tmp_path / "efficientvit_b1.pth"
    torch.save(full.state_dict(), path)
    backbone = build_backbone("efficientvit_b1", pretrained=path).eval()
    assert "stem_in_conv.conv.weight" in backbone.model.state_dict()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(backbone(x)[-1], full.forward_features(x))


def test_deeper_resnet_checkpoint_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "resnet50c.pth"
    with torch.device("meta"):
        keys = _v1c(50).state_dict()
    torch.save({k: torch.zeros(v.shape) for k, v in keys.items()}, path)
    with pytest.raises(ValueError) as err:
        build_backbone("resnet101", pretrained=path)
    message = str(err.value)
    assert str(path) in message
    # ResNet-50 has 6 blocks in layer3, ResNet-101 23: the first missing one is layer3.6.
    assert "missing keys (" in message and "layer3.6.conv1.weight" in message
    assert "unexpected keys (0)" in message  # the file's classifier is not held against it


def test_plain_stem_checkpoint_is_reported(tmp_path: Path) -> None:
    # The most likely mistake: torchvision-style ResNet-18 weights (one 7x7 stem conv).
    path = tmp_path / "resnet18_tv.pth"
    torch.save(_timm_classifier("resnet18").state_dict(), path)
    with pytest.raises(ValueError) as err:
        build_backbone("resnet18", pretrained=path)
    message = str(err.value)
    assert "missing keys (" in message and "conv1.0.weight" in message
    assert "unexpected keys (1): [conv1.weight]" in message
