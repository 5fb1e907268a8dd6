"""One step of the self-training method on a tiny network: order, terms and isolation."""

import copy

import pytest
import torch
from omegaconf import OmegaConf

from duda.models import build_segmentor
from duda.optim import build_optimizer, build_scheduler
from duda.uda.self_training import Components, SelfTraining

BACKBONE = OmegaConf.create({"name": "mit_b0", "pretrained": None, "drop_path_rate": 0.1})
HEAD = OmegaConf.create({"name": "segformer", "embed_dim": 32, "dropout": 0.1, "dilations": None})
OPT = OmegaConf.create(
    {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.01, "head_lr_mult": 10}
)
SCHED = OmegaConf.create(
    {"name": "poly_warmup", "warmup_iters": 0, "warmup_ratio": 1e-6, "power": 1.0, "min_lr": 0.0}
)


def _method(**kw) -> SelfTraining:
    torch.manual_seed(0)
    model = build_segmentor(BACKBONE, HEAD, 19)
    opt = build_optimizer(model, OPT)
    return SelfTraining(model, opt, build_scheduler(opt, SCHED, 10, 1e-3), Components(**kw))


def _batches(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    source = {
        "image": torch.randn(2, 3, 64, 64, generator=g),
        "label": torch.randint(0, 19, (2, 64, 64), generator=g),
    }
    target = {
        "image": torch.randn(2, 3, 64, 64, generator=g),
        "label": torch.randint(0, 19, (2, 64, 64), generator=g),
        "valid": torch.ones(2, 64, 64, dtype=torch.uint8),
    }
    return source, target


@pytest.mark.parametrize(
    ("kw", "terms"),
    [
        ({}, {"loss/source", "loss/mix"}),
        ({"fd_weight": 0.005, "fd_classes": (13,)}, {"loss/source", "loss/mix", "loss/fd"}),
        ({"mic_weight": 1.0, "mic_block": 16}, {"loss/source", "loss/mix", "loss/mic"}),
    ],
)
def test_step_logs_each_term_and_pseudo_label_quality(kw, terms):
    method = _method(**kw)
    source, target = _batches()
    source["label"][:, :32, :32] = 13  # a thing block for the feature distance
    logs = method.train_step(source, target, 0)
    assert terms <= {k for k in logs if k.startswith("loss/") and k != "loss/total"}
    assert all(torch.isfinite(v).all() for v in logs.values())
    total = sum(float(logs[t]) for t in terms)
    assert abs(float(logs["loss/total"]) - total) < 1e-4
    assert logs["confusion/pl_teacher"].sum() == 2 * 64 * 64
    assert 0 <= float(logs["pl/teacher_confident"]) <= 1


def test_teacher_is_updated_before_the_forward_passes():
    method = _method()
    before = copy.deepcopy(method.model.state_dict())
    source, target = _batches()
    method.train_step(source, target, 0)  # it = 0: the teacher copies the student first
    for name, p in method.ema.model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert any(not torch.equal(p, before[n]) for n, p in method.model.named_parameters())


def test_target_labels_never_reach_the_gradients():
    source, target = _batches()
    a, b = _method(), _method()
    other = dict(target, label=torch.randint(0, 19, (2, 64, 64)))
    for it in range(2):
        torch.manual_seed(it)  # dropout/drop-path draws alike in both
        a.train_step(source, target, it)
        torch.manual_seed(it)
        b.train_step(source, other, it)
    for (n, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q), n


def test_state_round_trip_resumes_identically():
    source, target = _batches()
    a = _method(mic_weight=1.0, mic_block=16)
    a.train_step(source, target, 0)
    b = _method(mic_weight=1.0, mic_block=16)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    torch.manual_seed(1)
    la = a.train_step(source, target, 1)
    torch.manual_seed(1)
    lb = b.train_step(source, target, 1)
    assert float(la["loss/total"]) == float(lb["loss/total"])
