"""The learning-rate schedule against mmcv's formulas evaluated by hand."""

import pytest
import torch

from duda.optim import poly_warmup_factor


@pytest.mark.parametrize(
    "it,expected",
    [
        (0, (1 - 0 / 40000) * (1 - (1 - 0 / 1500) * (1 - 1e-6))),
        (750, (1 - 750 / 40000) * (1 - 0.5 * (1 - 1e-6))),
        (1500, 1 - 1500 / 40000),
        (20000, 0.5),
        (40000, 0.0),
    ],
)
def test_reference_schedule_values(it, expected):
    assert poly_warmup_factor(it, 40000, 1500, 1e-6, 1.0, 0.0) == pytest.approx(expected)


def test_min_lr_floor():
    assert poly_warmup_factor(40000, 40000, 0, 1e-6, 1.0, 0.1) == pytest.approx(0.1)


def test_head_group_gets_ten_times_the_lr_and_norms_no_decay():
    from omegaconf import OmegaConf

    from duda.models import build_segmentor
    from duda.optim import build_optimizer

    model = build_segmentor(
        {"name": "mit_b0", "pretrained": None, "drop_path_rate": 0.0},
        {"name": "segformer", "embed_dim": 32, "dropout": 0.0},
        19,
    )
    cfg = OmegaConf.create(
        {
            "name": "adamw",
            "lr": 1e-4,
            "betas": [0.9, 0.999],
            "weight_decay": 0.01,
            "head_lr_mult": 10.0,
        }
    )
    opt = build_optimizer(model, cfg)
    head_ids = {id(p) for p in model.head.parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            assert group["lr"] == pytest.approx(1e-3 if id(p) in head_ids else 1e-4)
            if p.ndim <= 1:
                assert group["weight_decay"] == 0
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == sum(p.numel() for p in model.parameters())
    assert isinstance(opt, torch.optim.AdamW)
