import math

import torch

from duda.uda.pseudo_label import confusion, pseudo_label


def _logits_from_probs(probs: torch.Tensor) -> torch.Tensor:
    return probs.log()


def test_labels_and_batch_confidence_weight_by_hand():
    # 2 images of 1x2 pixels, 2 classes. Max probs: 0.99, 0.6 | 0.97, 0.5 (0.968 threshold).
    p = torch.tensor(
        [[[[0.99, 0.4]], [[0.01, 0.6]]], [[[0.03, 0.5]], [[0.97, 0.5]]]], dtype=torch.float64
    )
    labels, weight, share = pseudo_label(_logits_from_probs(p))
    assert labels.tolist() == [[[0, 1]], [[1, 0]]]
    # 2 of 4 pixels are confident -> q = 0.5 everywhere.
    assert torch.allclose(weight, torch.full((2, 1, 2), 0.5))
    assert math.isclose(float(share), 0.5)
    _, per_image, _ = pseudo_label(_logits_from_probs(p), per_image=True)
    assert torch.allclose(per_image[0], torch.full((1, 2), 0.5))
    assert torch.allclose(per_image[1], torch.full((1, 2), 0.5))


def test_per_image_weight_and_validity_mask():
    p = torch.tensor([[[[0.99, 0.99]], [[0.01, 0.01]]], [[[0.6, 0.6]], [[0.4, 0.4]]]])
    valid = torch.tensor([[[1, 0]], [[1, 1]]], dtype=torch.uint8)
    _, weight, _ = pseudo_label(p.log(), per_image=True, valid=valid)
    assert weight.tolist() == [[[1.0, 0.0]], [[0.0, 0.0]]]
    _, weight, _ = pseudo_label(p.log(), valid=valid)
    assert torch.allclose(weight, torch.tensor([[[0.5, 0.0]], [[0.5, 0.5]]]))


def test_upsampled_to_crop_size():
    labels, weight, _ = pseudo_label(torch.randn(1, 3, 4, 4), size=(16, 16))
    assert labels.shape == weight.shape == (1, 16, 16)


def test_confusion_counts_by_hand():
    gt = torch.tensor([[0, 0, 1, 255], [2, 1, 1, 0]])
    pred = torch.tensor([[0, 1, 1, 2], [2, 1, 0, 0]])
    m = confusion(pred, gt, 3)
    assert m.tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 1]]
