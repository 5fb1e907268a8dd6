"""Teacher fusion rules against hand-built probability maps."""

import pytest
import torch
from omegaconf import OmegaConf

from duda.distill.fusion import build_fusion, fuse


def _map(pixels):
    """(1, C, 1, P) map from a list of P per-pixel probability vectors."""
    return torch.tensor(pixels, dtype=torch.float32).T.reshape(1, len(pixels[0]), 1, len(pixels))


# Two teachers, three classes, two pixels.
T1 = _map([[0.6, 0.3, 0.1], [0.9, 0.05, 0.05]])
T2 = _map([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])


def test_mean():
    expected = _map([[0.4, 0.5, 0.1], [0.5, 0.075, 0.425]])
    torch.testing.assert_close(fuse([T1, T2], "mean"), expected)


def test_max_confidence_picks_the_most_confident_teacher_per_pixel():
    # Pixel 0: T2 (0.7 > 0.6); pixel 1: T1 (0.9 > 0.8).
    expected = _map([[0.2, 0.7, 0.1], [0.9, 0.05, 0.05]])
    torch.testing.assert_close(fuse([T1, T2], "max_confidence"), expected)


def test_max_confidence_tie_goes_to_the_first_teacher():
    a = _map([[0.5, 0.5, 0.0]])
    b = _map([[0.5, 0.0, 0.5]])
    torch.testing.assert_close(fuse([a, b], "max_confidence"), a)
    torch.testing.assert_close(fuse([b, a], "max_confidence"), b)


def test_weighted_normalises_the_weights():
    # Weights 3:1 -> 0.75 T1 + 0.25 T2.
    expected = _map([[0.5, 0.4, 0.1], [0.7, 0.0625, 0.2375]])
    torch.testing.assert_close(fuse([T1, T2], "weighted", [3.0, 1.0]), expected)
    torch.testing.assert_close(fuse([T1, T2], "weighted", [0.3, 0.1]), expected)
    torch.testing.assert_close(fuse([T1, T2], "weighted", None), fuse([T1, T2], "mean"))


def test_hard_label_and_confidence_are_the_argmax_of_the_fused_map():
    conf, label = fuse([T1, T2], "mean").max(dim=1)
    assert label.tolist() == [[[1, 0]]]
    torch.testing.assert_close(conf, torch.tensor([[[0.5, 0.5]]]))


@pytest.mark.parametrize("rule", ["mean", "max_confidence", "weighted"])
def test_single_teacher_is_unchanged_and_outputs_are_distributions(rule):
    torch.testing.assert_close(fuse([T1], rule), T1)
    g = torch.Generator().manual_seed(0)
    maps = [torch.softmax(torch.randn(2, 4, 3, 3, generator=g), 1) for _ in range(3)]
    weights = [1.0, 2.0, 0.5] if rule == "weighted" else None
    fused = fuse(maps, rule, weights)
    torch.testing.assert_close(fused.sum(1), torch.ones(2, 3, 3))


def test_build_fusion_from_config():
    fuse_fn = build_fusion(OmegaConf.create({"name": "weighted", "weights": [3, 1]}))
    torch.testing.assert_close(fuse_fn([T1, T2]), fuse([T1, T2], "weighted", [3.0, 1.0]))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="one shape"):
        fuse([T1, torch.zeros(1, 3, 2, 2)])
    with pytest.raises(ValueError, match="2 teachers"):
        fuse([T1, T2], "weighted", [1.0])
    with pytest.raises(ValueError, match="positive sum"):
        fuse([T1, T2], "weighted", [1.0, -1.0])
    with pytest.raises(ValueError, match="median"):
        build_fusion(OmegaConf.create({"name": "median", "weights": None}))
    with pytest.raises(ValueError, match="at least one"):
        fuse([])
