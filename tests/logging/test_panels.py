"""Image panels: what each view shows, and that drawing them leaves the training run unchanged."""

import copy

import numpy as np
import torch
from omegaconf import OmegaConf
from tiny_training import tiny_trainable, uda_batches

from duda.data.classes import IGNORE_INDEX, PALETTE
from duda.distill.fusion import build_fusion
from duda.distill.schedules import Schedule
from duda.distill.step import DUDA
from duda.logging.panels import panel, target_views
from duda.uda.losses import resize_logits
from duda.uda.self_training import Components, SelfTraining
from duda.uda.source_only import SourceOnly


def _self_training(seed: int = 0) -> SelfTraining:
    torch.manual_seed(seed)
    # BatchNorm of the teacher in train mode and averaged buffers: the case where an extra
    # teacher forward would leak into training if its statistics were not restored
    components = Components(ema_alpha=0.9, ema_buffers=True, teacher_bn_train=True)
    return SelfTraining(*tiny_trainable(), components, seed=seed)


def _target_with_border():
    source, target = uda_batches(32)
    target["valid"][:, :4] = 0  # the top rows are a no-pseudo-label border
    return source, target


def _state(method: SelfTraining) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v for k, v in method.model.state_dict().items()}
    state |= {f"teacher.{k}": v for k, v in method.ema.state_dict().items()}
    return state


def test_views_show_teacher_label_student_prediction_and_ground_truth():
    method = _self_training()
    source, target = _target_with_border()
    method.train_step(source, target, 0)
    image = target["image"][:1]
    with torch.no_grad():
        # on copies: a train-mode BatchNorm forward moves running statistics
        teacher = copy.deepcopy(method.ema.model)  # BN on batch statistics, as in training
        expected_pl = resize_logits(teacher(image), (32, 32)).argmax(1)
        expected_pl[:, :4] = IGNORE_INDEX
        student = copy.deepcopy(method.model).eval()  # BN on running statistics
        expected_pred = resize_logits(student(image), (32, 32)).argmax(1)

    views = target_views(method, target, it=0, count=1)
    assert views["image"].shape == (1, 32, 32, 3) and views["image"].dtype == np.uint8
    assert np.array_equal(views["pseudo_label"], expected_pl.numpy())
    assert np.array_equal(views["prediction"], expected_pred.numpy())
    assert np.array_equal(views["ground_truth"], target["label"][:1].numpy())
    assert method.model.training, "the student goes back to train mode"


def test_drawing_panels_changes_nothing_in_training():
    plain, drawn = _self_training(), _self_training()
    source, target = _target_with_border()
    for it in range(2):
        torch.manual_seed(it)  # drop-path draws from the global generator: same on both sides
        plain.train_step(source, target, it)
        torch.manual_seed(it)
        drawn.train_step(source, target, it)
        rng = torch.get_rng_state()
        target_views(drawn, target, it, count=2)
        assert torch.equal(rng, torch.get_rng_state()), "views drew random numbers"
    a, b = _state(plain), _state(drawn)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert torch.equal(plain.generator.get_state(), drawn.generator.get_state())


def test_source_only_has_no_pseudo_label_view():
    method = SourceOnly(*tiny_trainable()[:3])
    _, target = uda_batches(32)
    views = target_views(method, target, it=0, count=2)
    assert set(views) == {"image", "prediction", "ground_truth"}


def test_duda_view_follows_the_stage():
    torch.manual_seed(0)
    large = SelfTraining(*tiny_trainable(0.0), Components())
    torch.manual_seed(1)
    extra = tiny_trainable(0.0)[0].eval()
    method = DUDA(
        large,
        *tiny_trainable(0.0),
        pre_iters=2,
        kd_schedule=Schedule("linear", 1.0, 0, 2),
        pl_schedule=None,
        fuse=build_fusion(OmegaConf.create({"name": "mean", "weights": None})),
        tracker=None,
        extra_teachers=[extra],
    )
    _, target = uda_batches(32)
    teacher = copy.deepcopy(large.ema.model)
    with torch.no_grad():
        p_teacher = torch.softmax(resize_logits(teacher(target["image"]), (32, 32)), 1)
        p_extra = torch.softmax(resize_logits(extra(target["image"]), (32, 32)), 1)
    stage1 = method.pseudo_label_view(target, it=1)
    stage2 = method.pseudo_label_view(target, it=2)
    assert torch.equal(stage1, p_teacher.argmax(1))
    assert torch.equal(stage2, ((p_teacher + p_extra) / 2).argmax(1))


def test_panel_rows_use_the_cityscapes_palette():
    views = {
        "image": np.zeros((2, 4, 5, 3), np.uint8),
        "pseudo_label": np.full((2, 4, 5), 0, np.uint8),  # road
        "prediction": np.full((2, 4, 5), 13, np.uint8),  # car
        "ground_truth": np.full((2, 4, 5), IGNORE_INDEX, np.uint8),
    }
    out = panel(views, gap=2)
    assert out.shape == (2 * 4 + 2, 4 * 5 + 3 * 2, 3)
    assert tuple(out[0, 7]) == PALETTE[0]  # second tile: pseudo-label
    assert tuple(out[0, 14]) == PALETTE[13]  # third tile: prediction
    assert tuple(out[0, 21]) == (0, 0, 0)  # ignore is black
    assert tuple(out[4, 0]) == (255, 255, 255)  # the gap between rows
