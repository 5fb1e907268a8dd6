"""The distill config groups compose against the schema and drive the builders."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from duda.config import register_configs, validate
from duda.distill import build_fusion, build_schedule

CONF = Path(__file__).resolve().parents[2] / "conf"

register_configs()


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_duda_defaults():
    cfg = _compose(["distill=duda"])
    validate(cfg)
    d = cfg.distill
    assert (d.name, d.schedule.name, d.fusion.name) == ("duda", "linear", "mean")
    assert d.schedule.ramp_end is None
    assert (d.tau, d.kd_weight, d.pl_ramp) == (1.0, 1.0, False)
    assert (d.inconsistency.momentum, d.inconsistency.gamma) == (0.99, 1.0)
    assert list(d.inconsistency.clip) == [0.1, 10.0] and d.inconsistency.enabled
    assert (d.finetune.update_teacher, d.finetune.source_weight) == (False, 1.0)
    assert list(d.extra_teachers) == []
    assert (cfg.loss.kd, cfg.loss.inconsistency) == (1.0, 1.0)


def test_schedule_group_override_composes_and_builds():
    cfg = _compose(["distill=duda", "distill/schedule=cosine", "distill.pre_iters=1000"])
    assert cfg.distill.schedule.name == "cosine"
    sched = build_schedule(cfg.distill)
    assert (sched.start, sched.end) == (0, 1000)  # ramp_end null -> pre_iters
    assert sched(500) == pytest.approx(0.5)
    assert sched(1000) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["linear", "cosine", "step", "constant"])
def test_every_schedule_file_builds(name):
    cfg = _compose(["distill=duda", f"distill/schedule={name}"])
    assert build_schedule(cfg.distill).name == name


@pytest.mark.parametrize("name", ["mean", "max_confidence", "weighted"])
def test_every_fusion_file_builds(name):
    cfg = _compose(["distill=duda", f"distill/fusion={name}"])
    assert cfg.distill.fusion.name == name
    build_fusion(cfg.distill.fusion)


def test_weighted_fusion_and_extra_teachers_from_the_command_line():
    cfg = _compose(
        [
            "distill=duda",
            "distill/fusion=weighted",
            "distill.fusion.weights=[2,1]",
            "distill.extra_teachers=[{checkpoint: /ckpt/mic_b5.pth}]",
        ]
    )
    validate(cfg)
    assert list(cfg.distill.fusion.weights) == [2.0, 1.0]
    assert cfg.distill.extra_teachers[0].checkpoint == "/ckpt/mic_b5.pth"
    assert cfg.distill.extra_teachers[0].model is None


def test_none_still_composes():
    cfg = _compose(["distill=none"])
    validate(cfg)
    assert cfg.distill.name == "none"


def test_bad_distill_keys_fail_at_composition():
    with pytest.raises(ConfigCompositionException):
        _compose(["distill=duda", "distill.kd_wieght=2"])
    with pytest.raises(ConfigCompositionException):
        _compose(["distill=duda", "distill.inconsistency.gamma=high"])
    with pytest.raises(ConfigCompositionException):
        _compose(["distill=duda", "distill/schedule=exponential"])
