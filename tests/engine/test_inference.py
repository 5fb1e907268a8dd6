"""Sliding-window inference: coverage, averaging, and agreement with whole-image inference."""

import torch

from duda.engine.inference import _starts, predict_slide, predict_whole


def test_window_starts_cover_the_image():
    assert _starts(100, 40, 20) == [0, 20, 40, 60]
    assert _starts(100, 40, 30) == [0, 30, 60]
    assert _starts(30, 40, 20) == [0]


def test_pointwise_model_gives_same_logits_slide_and_whole():
    """A per-pixel model has no context, so windows must reproduce whole-image logits exactly."""
    conv = torch.nn.Conv2d(3, 5, 1)
    x = torch.randn(2, 3, 37, 53)
    whole = predict_whole(conv, x, (37, 53))
    slide = predict_slide(conv, x, 5, (16, 16), (10, 12), (37, 53))
    assert torch.allclose(whole, slide, atol=1e-6)


def test_overlaps_are_averaged():
    calls = []

    def constant(x):
        calls.append(x.shape[-2:])
        return torch.full((x.shape[0], 1, *x.shape[-2:]), float(len(calls)))

    out = predict_slide(constant, torch.zeros(1, 3, 4, 6), 1, (4, 4), (4, 2), (4, 6))
    # windows at x=0 (value 1) and x=2 (value 2): columns 2-3 overlap -> mean 1.5
    assert out[0, 0, 0].tolist() == [1, 1, 1.5, 1.5, 2, 2]
