import torch
from torch import nn

from duda.uda.ema import EMATeacher, ema_alpha, ema_update_


def test_alpha_ramp_values():
    # min(1 - 1/(t+1), alpha): 0, 1/2, 2/3, ... then capped.
    assert ema_alpha(0, 0.999) == 0.0
    assert ema_alpha(1, 0.999) == 0.5
    assert abs(ema_alpha(2, 0.999) - 2 / 3) < 1e-12
    assert abs(ema_alpha(998, 0.999) - 998 / 999) < 1e-12
    assert ema_alpha(999, 0.999) == 0.999
    assert ema_alpha(5000, 0.999) == 0.999
    assert ema_alpha(150, 0.99) == 0.99


def test_foreach_update_matches_plain_loop():
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (7,), (2, 3, 5), (1,)]
    teacher = [torch.randn(s, generator=g) for s in shapes]
    student = [torch.randn(s, generator=g) for s in shapes]
    expected = [
        t.clone().mul_(0.9).add_(s, alpha=0.1) for t, s in zip(teacher, student, strict=True)
    ]
    ema_update_(teacher, student, 0.9)
    for got, want in zip(teacher, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Conv2d(4, 2, 1))


def test_teacher_is_the_running_mean_of_student_states_during_the_ramp():
    torch.manual_seed(0)
    student = _net()
    ema = EMATeacher(student, alpha=0.999)
    states = []
    for it in range(4):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        ema.update(student, it)
        states.append([p.detach().clone() for p in student.parameters()])
    # α_t = t/(t+1) for t < 999, so after updates at t = 0..3 the teacher is the mean of the 4.
    for i, p in enumerate(ema.model.parameters()):
        mean = torch.stack([s[i] for s in states]).mean(0)
        torch.testing.assert_close(p, mean, rtol=1e-5, atol=1e-6)
        assert not p.requires_grad


def test_first_update_copies_exactly_and_buffers_follow_the_knob():
    student = _net()
    with torch.no_grad():
        student[1].running_mean.fill_(3.0)
    plain = EMATeacher(_net(), alpha=0.99)
    plain.update(student, 0)
    for p, q in zip(plain.model.parameters(), student.parameters(), strict=True):
        assert torch.equal(p, q)
    assert torch.equal(plain.model[1].running_mean, torch.zeros(4))  # buffers not averaged
    with_buffers = EMATeacher(_net(), alpha=0.99, ema_buffers=True)
    with_buffers.update(student, 0)
    assert torch.equal(with_buffers.model[1].running_mean, torch.full((4,), 3.0))


def test_teacher_forward_mode_has_dropout_off_and_batchnorm_as_configured():
    ema = EMATeacher(_net(), bn_train=True)
    teacher = ema.prepare_forward()
    assert teacher[1].training and not teacher[2].training
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(teacher(x), teacher(x))  # deterministic: no dropout
    assert not EMATeacher(_net(), bn_train=False).prepare_forward()[1].training
