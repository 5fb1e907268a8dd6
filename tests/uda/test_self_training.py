"""One step of the self-training method on a tiny network: order, terms and isolation."""

import copy

import pytest
import torch
from tiny_training import tiny_trainable, uda_batches

from duda.uda.self_training import Components, SelfTraining


def _method(**kw) -> SelfTraining:
    torch.manual_seed(0)
    return SelfTraining(*tiny_trainable(), Components(**kw))


def _batches():
    return uda_batches(64)


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
