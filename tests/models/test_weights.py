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
