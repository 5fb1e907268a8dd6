"""Inconsistency weights on constructed disagreement patterns, EMA arithmetic by hand."""

import math

import pytest
import torch

from duda.distill.inconsistency import InconsistencyTracker, inconsistency_loss
from duda.uda.losses import pixel_ce


def _row(values):
    """(1, 1, P) label/prediction map from a list."""
    return torch.tensor(values).view(1, 1, -1)


# Labels 0,1,2 five pixels each. The student gets 4 of class 0 right (one -> 1), all of class 1,
# and only 2 of class 2 (three -> 0):
#   class 0: pred 7 px, label 5, inter 4, union 8 -> IoU 1/2, d = 1/2
#   class 1: pred 6, label 5, inter 5, union 6   -> IoU 5/6, d = 1/6
#   class 2: pred 2, label 5, inter 2, union 5   -> IoU 2/5, d = 3/5
LABEL = _row([0] * 5 + [1] * 5 + [2] * 5)
PRED = _row([0, 0, 0, 0, 1] + [1] * 5 + [2, 2, 0, 0, 0])
D = [0.5, 1 / 6, 0.6]


def test_constructed_pattern_weights_by_hand():
    tracker = InconsistencyTracker(4)  # class 3 never occurs
    tracker.update(PRED, LABEL)
    d = tracker.disagreement
    torch.testing.assert_close(d[:3], torch.tensor(D))
    assert math.isnan(d[3].item())
    # w_c = C_S · d_c / Σ d with C_S = 3 seen classes, Σ d = 19/15.
    w = tracker.weights()
    expected = [3 * x * 15 / 19 for x in D] + [1.0]
    torch.testing.assert_close(w, torch.tensor(expected))
    assert w[:3].argmax().item() == 2  # the worst-adapted class weighs most
    assert w[:3].mean().item() == pytest.approx(1.0)
    assert w[3].item() == 1.0  # never seen


def test_gamma_sharpens_the_weights():
    tracker = InconsistencyTracker(3, gamma=2.0)
    tracker.update(PRED, LABEL)
    sq = [x * x for x in D]
    torch.testing.assert_close(tracker.weights(), torch.tensor([3 * x / sum(sq) for x in sq]))


def test_ema_arithmetic_and_absent_classes_untouched():
    tracker = InconsistencyTracker(4, momentum=0.9)
    tracker.update(PRED, LABEL)
    # Batch 2: classes 1 and 2 perfect (d_batch = 0); class 0 absent from both -> unchanged.
    tracker.update(_row([1, 1, 2, 2]), _row([1, 1, 2, 2]))
    # Batch 3: class 3 first seen (label 3,3; pred 3,0 -> IoU 1/2): initialised, not averaged;
    # class 0 predicted once, never labelled -> d_batch = 1.
    tracker.update(_row([3, 0]), _row([3, 3]))
    expected = [0.9 * 0.5 + 0.1 * 1.0, 0.9 / 6, 0.9 * 0.6, 0.5]
    torch.testing.assert_close(tracker.disagreement, torch.tensor(expected))
    total = sum(expected)
    torch.testing.assert_close(tracker.weights(), torch.tensor([4 * x / total for x in expected]))


def test_ignored_and_invalid_pixels_are_not_counted():
    tracker = InconsistencyTracker(3)
    # The ignored pixel and the invalid pixel would each be a class-2 error if counted.
    label = _row([0, 0, 1, 1, 255, 1])
    pred = _row([0, 0, 1, 1, 2, 2])
    valid = _row([1, 1, 1, 1, 1, 0])
    tracker.update(pred, label, valid)
    assert tracker.seen.tolist() == [True, True, False]
    torch.testing.assert_close(tracker.weights(), torch.ones(3))  # all agree: Σ d = 0


def test_logits_are_accepted_and_upsampled():
    # Class 1 wins everywhere at half resolution; the label says class 0 on the left half.
    logits = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    label = torch.tensor([[0, 0, 1, 1]] * 4).view(1, 4, 4)
    tracker = InconsistencyTracker(2)
    tracker.update(logits, label)
    # class 0: pred 0 px, label 8 -> IoU 0; class 1: pred 16, label 8, inter 8 -> IoU 1/2.
    torch.testing.assert_close(tracker.disagreement, torch.tensor([1.0, 0.5]))


def test_clip_bounds_seen_weights_only():
    tracker = InconsistencyTracker(4, clip=(0.5, 1.5))
    # Classes 0..2 as in the constructed pattern, with class 1 now perfect (d = 0).
    tracker.update(_row([0, 1, 2, 2]), _row([0, 1, 2, 0]))
    # d: class 0: pred 1, label 2, inter 1 -> 1/2; class 1 -> 0; class 2: inter 1, union 2 -> 1/2.
    # Unclipped w = 3 · (1/2, 0, 1/2) / 1 = (1.5, 0, 1.5); unseen class 3 stays 1.
    torch.testing.assert_close(tracker.weights(), torch.tensor([1.5, 0.5, 1.5, 1.0]))


def test_weights_are_constants_for_the_gradient():
    tracker = InconsistencyTracker(3)
    tracker.update(PRED, LABEL)
    w = tracker.weights()
    assert not w.requires_grad
    # Even weights that require grad receive none through the loss.
    w = w.clone().requires_grad_(True)
    logits = torch.randn(1, 3, 1, 15, requires_grad=True)
    inconsistency_loss(logits, LABEL, w, 1.0).backward()
    assert w.grad is None
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_loss_hand_computed():
    # Zero logits: CE = ln 2 everywhere. Class weights (2, 0.5), pixel weights (1, 0.5, -),
    # third pixel ignored: (2·1 + 0.5·0.5) ln 2 / 2 valid pixels.
    logits = torch.zeros(1, 2, 1, 3)
    label = _row([0, 1, 255])
    loss = inconsistency_loss(
        logits, label, torch.tensor([2.0, 0.5]), torch.tensor([[[1, 0.5, 1]]])
    )
    assert loss.item() == pytest.approx(1.125 * math.log(2))
    scalar = inconsistency_loss(logits, label, torch.tensor([2.0, 0.5]), 0.5)
    assert scalar.item() == pytest.approx(0.5 * 2.5 * math.log(2) / 2)
    unweighted = inconsistency_loss(logits, label, torch.ones(2))
    assert unweighted.item() == pytest.approx(math.log(2))


def test_pixel_ce_default_normalisation_is_unchanged():
    # The shared pixel_ce keeps the reference mean over all pixels unless asked otherwise.
    logits = torch.zeros(1, 2, 1, 2)
    label = torch.tensor([[[0, 255]]])
    assert pixel_ce(logits, label).item() == pytest.approx(math.log(2) / 2)
    assert pixel_ce(logits, label, avg_non_ignore=True).item() == pytest.approx(math.log(2))
    weighted = pixel_ce(logits, label, class_weight=torch.tensor([3.0, 1.0]))
    assert weighted.item() == pytest.approx(3 * math.log(2) / 2)


def test_state_dict_round_trip():
    tracker = InconsistencyTracker(4, momentum=0.9)
    tracker.update(PRED, LABEL)
    state = tracker.state_dict()
    restored = InconsistencyTracker(4, momentum=0.9)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.weights(), tracker.weights())
    tracker.update(_row([1, 1]), _row([1, 1]))
    restored.update(_row([1, 1]), _row([1, 1]))
    torch.testing.assert_close(restored.disagreement[:3], tracker.disagreement[:3])
    with pytest.raises(ValueError, match="4 classes"):
        InconsistencyTracker(5).load_state_dict(state)


def test_fresh_tracker_weights_are_one():
    torch.testing.assert_close(InconsistencyTracker(5).weights(), torch.ones(5))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_weights_follow_the_input_device():
    tracker = InconsistencyTracker(3)
    tracker.update(PRED.cuda(), LABEL.cuda())
    assert tracker.weights().device.type == "cuda"
    torch.testing.assert_close(tracker.weights().cpu()[:3].mean(), torch.tensor(1.0))


def test_pixel_normalisation_gives_mean_one_over_counted_pixels():
    from duda.distill.inconsistency import pixel_mean_one

    w = torch.tensor([0.5, 2.0, 1.0])
    label = torch.tensor([[[0, 0, 0, 1, 255]]])
    # counted pixels: three of class 0, one of class 1 -> mean weight (3*0.5 + 2.0) / 4 = 0.875
    out = pixel_mean_one(w, label)
    assert torch.allclose(out, torch.tensor([0.5, 2.0, 1.0]) / 0.875)
    assert torch.isclose(out[label[label != 255]].mean(), torch.tensor(1.0))
    # a validity mask drops pixels from the mean: (2*0.5 + 2.0) / 3 = 1.0
    valid = torch.tensor([[[1, 1, 0, 1, 1]]])
    assert torch.allclose(pixel_mean_one(w, label, valid), w)
    # nothing counted: weights unchanged, no NaN
    assert torch.equal(pixel_mean_one(w, torch.full((1, 1, 3), 255)), w)
    with pytest.raises(ValueError, match="normalize"):
        InconsistencyTracker(3, normalize="batch")


def test_loss_weights_follow_the_trackers_normalisation_rule():
    label = torch.tensor([[[0, 0, 0, 1]]])
    pred = torch.tensor([[[0, 0, 1, 1]]])  # class 0: IoU 2/3, class 1: IoU 1/2
    logits = torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).float()
    by_class, by_pixel = InconsistencyTracker(2), InconsistencyTracker(2, normalize="pixels")
    for tracker in (by_class, by_pixel):
        tracker.update(logits, label)
    # d = (1/3, 1/2): class-mean weights 2·d / Σd = (4/5, 6/5)
    torch.testing.assert_close(by_class.loss_weights(label), torch.tensor([0.8, 1.2]))
    # mean over three class-0 pixels and one class-1 pixel: (3·0.8 + 1.2) / 4 = 0.9
    torch.testing.assert_close(by_pixel.loss_weights(label), torch.tensor([0.8, 1.2]) / 0.9)
