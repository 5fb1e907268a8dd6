"""λ(t) schedules at chosen iterations against hand values."""

import math

import pytest
from omegaconf import OmegaConf

from duda.distill.schedules import Schedule, build_schedule


def _cfg(name, start=0, end=None, kd_weight=2.0, pre_iters=400):
    return OmegaConf.create(
        {
            "kd_weight": kd_weight,
            "pre_iters": pre_iters,
            "schedule": {"name": name, "ramp_start": start, "ramp_end": end},
        }
    )


@pytest.mark.parametrize(
    "t,expected", [(0, 0.0), (100, 0.0), (150, 0.5), (200, 1.0), (300, 2.0), (5000, 2.0)]
)
def test_linear(t, expected):
    assert build_schedule(_cfg("linear", 100, 300))(t) == pytest.approx(expected)


@pytest.mark.parametrize(
    "t,expected",
    [
        (0, 0.0),
        (100, 0.0),
        (150, 1 - math.sqrt(2) / 2),
        (200, 1.0),
        (250, 1 + math.sqrt(2) / 2),
        (300, 2.0),
        (999, 2.0),
    ],
)
def test_cosine(t, expected):
    # 2 · (1 - cos(π s)) / 2 with s = (t - 100) / 200.
    assert build_schedule(_cfg("cosine", 100, 300))(t) == pytest.approx(expected)


@pytest.mark.parametrize("t,expected", [(0, 0.0), (99, 0.0), (100, 2.0), (10_000, 2.0)])
def test_step(t, expected):
    assert build_schedule(_cfg("step", 100, 300))(t) == expected


@pytest.mark.parametrize("t", [0, 1, 400, 10_000])
def test_constant(t):
    assert build_schedule(_cfg("constant", 100, 300))(t) == 2.0


def test_null_ramp_end_is_pre_iters():
    sched = build_schedule(_cfg("linear", 0, None, kd_weight=1.0, pre_iters=400))
    assert sched.end == 400
    assert sched(100) == pytest.approx(0.25)
    assert sched(400) == 1.0


def test_weight_override_reuses_the_ramp():
    sched = build_schedule(_cfg("linear", 0, 200, kd_weight=5.0), weight=1.0)
    assert sched(100) == pytest.approx(0.5)


def test_zero_length_ramp_is_a_step():
    sched = Schedule("linear", 1.0, start=50, end=50)
    assert (sched(49), sched(50)) == (0.0, 1.0)


def test_bad_schedules_raise():
    with pytest.raises(ValueError, match="exponential"):
        build_schedule(_cfg("exponential"))
    with pytest.raises(ValueError, match="ramp_end"):
        build_schedule(_cfg("linear", 300, 100))
    with pytest.raises(ValueError, match="ramp_start"):
        build_schedule(_cfg("step", -1))
