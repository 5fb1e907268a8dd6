"""Cross-entropy normalisation as the reference: mean over all pixels, ignored ones included."""

import math

import pytest
import torch

from duda.uda.losses import pixel_ce


def test_pixel_ce_hand_computed():
    # Two pixels, two classes. Pixel 0: logits (0, 0), label 0 -> log 2. Pixel 1 ignored.
    logits = torch.zeros(1, 2, 1, 2)
    labels = torch.tensor([[[0, 255]]])
    assert pixel_ce(logits, labels).item() == pytest.approx(math.log(2) / 2)


def test_pixel_weights_scale_each_pixel():
    logits = torch.zeros(1, 2, 1, 2)
    labels = torch.tensor([[[0, 1]]])
    weight = torch.tensor([[[1.0, 0.0]]])
    assert pixel_ce(logits, labels, weight).item() == pytest.approx(math.log(2) / 2)


def test_logits_are_upsampled_to_label_size():
    logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
    loss = pixel_ce(logits, torch.zeros(2, 16, 16, dtype=torch.long))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(3))
    assert logits.grad is not None
