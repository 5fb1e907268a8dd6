"""KD term against hand-computed KL values and an independent torch implementation."""

import math

import pytest
import torch
import torch.nn.functional as F

from duda.distill.kd import kd_loss, soften


def _pixel(values):
    """(1, C, 1, 1) tensor from a list of C values."""
    return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)


def test_hand_computed_kl_tau_1():
    # q = softmax(0, ln 3) = (1/4, 3/4); p = (1/2, 1/2):
    # KL = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3).
    loss = kd_loss(_pixel([0.0, math.log(3)]), _pixel([0.5, 0.5]), tau=1.0)
    assert loss.item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)


def test_hand_computed_kl_tau_2_scales_by_tau_squared():
    # z / 2 = (0, ln 3) gives the same q as above; the τ² factor multiplies by 4.
    loss = kd_loss(_pixel([0.0, 2 * math.log(3)]), _pixel([0.5, 0.5]), tau=2.0)
    assert loss.item() == pytest.approx(4 * 0.5 * math.log(4 / 3), rel=1e-6)


def test_one_hot_teacher_gives_cross_entropy_without_nan():
    # p = (0, 1): KL = -log q_1 = -log(3/4).
    loss = kd_loss(_pixel([0.0, math.log(3)]), _pixel([0.0, 1.0]))
    assert loss.item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_matches_torch_kl_div_on_random_maps():
    g = torch.Generator().manual_seed(0)
    z_s = torch.randn(2, 5, 6, 7, generator=g)
    p_t = torch.softmax(torch.randn(2, 5, 6, 7, generator=g) * 3, dim=1)
    tau = 2.5
    expected = (
        F.kl_div(F.log_softmax(z_s / tau, dim=1), p_t, reduction="none").sum(1).mean() * tau**2
    )
    assert kd_loss(z_s, p_t, tau).item() == pytest.approx(expected.item(), rel=1e-5)


def test_mean_over_valid_pixels_only():
    # Pixel 0: KL = 1/2 ln(4/3); pixel 1: teacher equals student, KL = 0.
    z_s = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]]).view(1, 2, 1, 2)
    p_t = torch.tensor([[0.5, 0.5], [0.5, 0.5]]).view(1, 2, 1, 2)
    both = kd_loss(z_s, p_t)
    first = kd_loss(z_s, p_t, valid=torch.tensor([[[True, False]]]))
    second = kd_loss(z_s, p_t, valid=torch.tensor([[[0, 1]]]))
    assert both.item() == pytest.approx(0.25 * math.log(4 / 3), rel=1e-6)
    assert first.item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert second.item() == pytest.approx(0.0, abs=1e-7)


def test_pixel_weight_scales_but_does_not_renormalise():
    z_s = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]]).view(1, 2, 1, 2)
    p_t = torch.full((1, 2, 1, 2), 0.5)
    loss = kd_loss(z_s, p_t, weight=torch.tensor([[[0.5, 1.0]]]))
    # (0.5 · 1/2 ln(4/3) + 1 · 0) / 2 pixels
    assert loss.item() == pytest.approx(0.125 * math.log(4 / 3), rel=1e-6)


def test_no_valid_pixel_gives_zero_not_nan():
    z_s = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = kd_loss(
        z_s, torch.full((1, 3, 2, 2), 1 / 3), valid=torch.zeros(1, 2, 2, dtype=torch.bool)
    )
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(z_s.grad == 0)


def test_student_upsampled_to_teacher_resolution():
    # Spatially constant student logits stay constant under bilinear upsampling.
    z_s = _pixel([0.0, math.log(3)]).expand(1, 2, 2, 3).contiguous()
    p_t = torch.full((1, 2, 8, 12), 0.5)
    assert kd_loss(z_s, p_t).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    # A varying map: same result as upsampling first with pixel_ce's convention.
    z = torch.randn(2, 4, 3, 5)
    p = torch.softmax(torch.randn(2, 4, 6, 10), dim=1)
    up = F.interpolate(z, size=(6, 10), mode="bilinear", align_corners=False)
    assert kd_loss(z, p).item() == pytest.approx(kd_loss(up, p).item(), rel=1e-6)


def test_gradient_reaches_student_only():
    z_s = torch.randn(1, 3, 4, 4, requires_grad=True)
    p_t = torch.softmax(torch.randn(1, 3, 4, 4), dim=1).requires_grad_(True)
    kd_loss(z_s, p_t, tau=2.0).backward()
    assert z_s.grad is not None and z_s.grad.abs().sum() > 0
    assert p_t.grad is None


def test_soften_equals_softmax_of_scaled_logits():
    z = torch.randn(2, 6, 3, 3)
    for tau in (0.5, 1.0, 4.0):
        torch.testing.assert_close(soften(torch.softmax(z, 1), tau), torch.softmax(z / tau, 1))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="tau"):
        kd_loss(torch.zeros(1, 2, 1, 1), torch.full((1, 2, 1, 1), 0.5), tau=0.0)
    with pytest.raises(ValueError, match="classes"):
        kd_loss(torch.zeros(1, 3, 1, 1), torch.full((1, 2, 1, 1), 0.5))
