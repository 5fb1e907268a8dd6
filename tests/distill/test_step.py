"""DUDA's two stages on tiny networks: shared teacher/mix, stage switch, multi-teacher."""

import copy
import warnings

import torch
from omegaconf import OmegaConf
from tiny_training import tiny_trainable, uda_batches

from duda.distill.fusion import build_fusion
from duda.distill.inconsistency import InconsistencyTracker
from duda.distill.schedules import Schedule
from duda.distill.step import DUDA
from duda.uda.self_training import Components, SelfTraining


def _duda(pre_iters: int = 2, extra=None, **kw) -> DUDA:
    torch.manual_seed(0)
    large = SelfTraining(*tiny_trainable(0.0), Components())
    return DUDA(
        large,
        *tiny_trainable(0.0),
        pre_iters=pre_iters,
        kd_schedule=Schedule("linear", 1.0, 0, pre_iters),
        pl_schedule=None,
        fuse=build_fusion(OmegaConf.create({"name": "mean", "weights": None})),
        tracker=InconsistencyTracker(19),
        extra_teachers=extra,
        **kw,
    )


def _batches():
    return uda_batches(32)


def test_stage1_trains_both_students_from_one_teacher_forward(monkeypatch):
    method = _duda(pre_iters=4)
    source, target = _batches()
    calls = {"teacher": 0, "mix": 0}
    real_pl, real_mix = method.large.pseudo_labels, method.large.mix

    def counting_pl(*a, **k):
        calls["teacher"] += 1
        return real_pl(*a, **k)

    def counting_mix(*a, **k):
        calls["mix"] += 1
        return real_mix(*a, **k)

    monkeypatch.setattr(method.large, "pseudo_labels", counting_pl)
    monkeypatch.setattr(method.large, "mix", counting_mix)
    large_before = copy.deepcopy(method.large.model.state_dict())
    student_before = copy.deepcopy(method.student.state_dict())
    logs = method.train_step(source, target, 0)
    logs = method.train_step(source, target, 2)
    assert calls == {"teacher": 2, "mix": 2}
    for key in ("loss/large_source", "loss/large_mix", "loss/student_source", "loss/student_pl"):
        assert key in logs and torch.isfinite(logs[key])
    # the linear ramp is at 2/4 of kd_weight at t = 2, and the KD term is on
    assert float(logs["distill/lambda_kd"]) == 0.5 and "loss/student_kd" in logs
    assert 0 <= float(logs["distill/agreement"]) <= 1
    changed = lambda m, before: any(  # noqa: E731
        not torch.equal(p, before[n]) for n, p in m.state_dict().items()
    )
    assert changed(method.large.model, large_before) and changed(method.student, student_before)


def test_no_kd_term_before_the_ramp_starts():
    method = _duda(pre_iters=4)
    logs = method.train_step(*_batches(), 0)
    assert float(logs["distill/lambda_kd"]) == 0.0 and "loss/student_kd" not in logs


def test_stage_switch_frees_the_large_student_and_its_optimizer_state():
    method = _duda(pre_iters=1)
    source, target = _batches()
    method.train_step(source, target, 0)
    optimizer = method.large.optimizer
    assert len(optimizer.state) > 0  # Adam moments exist after stage 1
    teacher_before = copy.deepcopy(method.large.ema.state_dict())
    logs = method.train_step(source, target, 1)
    assert method.large_retired and method.large.model is None
    assert method.large.optimizer is None and len(optimizer.state) == 0
    for name, value in method.large.ema.state_dict().items():
        if value.is_floating_point() and "running" not in name:
            assert torch.equal(value, teacher_before[name]), f"teacher changed: {name}"
    assert {"loss/student_kd", "loss/student_inconsistency", "loss/student_source"} <= set(logs)
    assert "inconsistency/w/road" in logs and "confusion/student" in logs
    assert "confusion/pl_fused" in logs and "confusion/pl_teacher" in logs
    state = method.state_dict()
    assert "large" not in state and state["large_retired"]


def test_multi_teacher_fusion_uses_extra_teachers():
    extra, _, _ = tiny_trainable(0.0)
    extra.eval().requires_grad_(False)
    method = _duda(pre_iters=0, extra=[extra])
    source, target = _batches()
    logs: dict = {}
    fused, _ = method.teacher_targets(target, logs)
    teacher = torch.softmax(method.large.pseudo_labels(target).logits, 1)
    with torch.no_grad():
        other = torch.softmax(extra.predict(target["image"]), 1)
    torch.testing.assert_close(fused, (teacher + other) / 2, rtol=1e-4, atol=1e-5)


def test_resume_across_the_stage_switch():
    source, target = _batches()
    a = _duda(pre_iters=1)
    a.train_step(source, target, 0)
    a.train_step(source, target, 1)
    b = _duda(pre_iters=1)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert b.large_retired and b.large.model is None
    torch.manual_seed(3)
    la = a.train_step(source, target, 2)
    torch.manual_seed(3)
    lb = b.train_step(source, target, 2)
    assert float(la["loss/total"]) == float(lb["loss/total"])


def test_no_pre_adaptation_leaves_the_student_untouched_in_stage1():
    method = _duda(pre_iters=4, student_in_stage1=False)
    before = copy.deepcopy(method.student.state_dict())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logs = method.train_step(*_batches(), 0)
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]  # not the user's concern
    assert method.scheduler.last_epoch == 1  # the schedule still counts the global iteration
    assert not any(k.startswith("loss/student_") for k in logs)
    for name, value in method.student.state_dict().items():
        assert torch.equal(value, before[name]), name


def _stage2_inputs(method: DUDA, source, target) -> tuple[list[torch.Tensor], dict]:
    """The student's inputs in one stage-2 step (source first, then the target view)."""
    seen: list[torch.Tensor] = []
    hook = method.student.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    logs = method.train_step(source, target, 1)
    hook.remove()
    return seen, logs


def test_stage2_mix_trains_on_classmixed_target_crops():
    source, target = _batches()
    plain = _duda(pre_iters=1)
    plain.train_step(source, target, 0)
    seen, logs = _stage2_inputs(plain, source, target)
    assert torch.equal(seen[-1], target["image"])  # default: the clean target crop
    full = int(logs["confusion/student"].sum())

    mixing = _duda(pre_iters=1, finetune_mix=True)
    mixing.train_step(source, target, 0)
    seen, logs = _stage2_inputs(mixing, source, target)
    assert seen[-1].shape == target["image"].shape and not torch.equal(seen[-1], target["image"])
    assert {"loss/student_kd", "loss/student_inconsistency"} <= set(logs)
    # student quality is measured on the target pixels only: pasted source pixels are left out
    assert 0 < int(logs["confusion/student"].sum()) < full
