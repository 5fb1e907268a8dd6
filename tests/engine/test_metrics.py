"""IoU against a hand-computed confusion matrix and against torchmetrics."""

import math

import pytest
import torch

from duda.engine.metrics import ConfusionMatrix, format_table, iou_per_class, mean_iou, summarize


def test_hand_computed_confusion_and_iou():
    # 3 classes; ground truth (rows) vs prediction (columns), one 255 pixel ignored.
    target = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    expected = torch.tensor([[1, 1, 0], [0, 2, 1], [1, 0, 1]])
    assert torch.equal(cm.matrix, expected)
    iou = iou_per_class(cm.matrix)
    # class 0: I=1, U=2+2-1=3; class 1: I=2, U=3+3-2=4; class 2: I=1, U=2+2-1=3
    assert iou.tolist() == pytest.approx([1 / 3, 2 / 4, 1 / 3])
    assert mean_iou(iou) == pytest.approx((1 / 3 + 1 / 2 + 1 / 3) / 3)


def test_absent_class_is_nan_and_skipped():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    iou = iou_per_class(cm.matrix)
    assert math.isnan(iou[2])
    assert mean_iou(iou) == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert mean_iou(iou, subset=[0]) == pytest.approx(0.5)


def test_matches_torchmetrics_over_many_batches():
    from torchmetrics.classification import MulticlassJaccardIndex

    g = torch.Generator().manual_seed(0)
    ours = ConfusionMatrix(19)
    ref = MulticlassJaccardIndex(num_classes=19, average=None, ignore_index=255)
    for _ in range(5):
        target = torch.randint(0, 19, (2, 32, 48), generator=g)
        target[:, :4] = 255
        pred = torch.where(
            torch.rand(target.shape, generator=g) < 0.6,
            target,
            torch.randint(0, 19, target.shape, generator=g),
        )
        pred[target == 255] = torch.randint(0, 19, (int((target == 255).sum()),), generator=g)
        ours.update(pred, target)
        ref.update(pred, target)
    assert torch.allclose(iou_per_class(ours.matrix).float(), ref.compute(), atol=1e-6)


def test_label_out_of_range_is_reported():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="label value 7 outside 0..2"):
        cm.update(torch.tensor([0]), torch.tensor([7]))


def test_summary_and_table():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))
    s = summarize(cm.matrix, ["road", "sky"])
    assert s["mIoU"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert s["aAcc"] == pytest.approx(75.0)
    table = format_table(s)
    assert "road" in table and "mIoU" in table and "58.3" in table


def _synthia_like_matrix() -> torch.Tensor:
    """19 classes, 10 ground-truth pixels each. Terrain (9) is always predicted as road (0);
    half of wall (3) is predicted as fence (4); everything else is right."""
    m = torch.diag(torch.full((19,), 10, dtype=torch.int64))
    m[9, 9], m[9, 0] = 0, 10
    m[3, 3], m[3, 4] = 5, 5
    return m


def test_subset_means_on_a_hand_made_matrix():
    # IoU by hand: road 10/(10+20-10)=1/2, wall 5/10=1/2, fence 10/15=2/3, terrain 0/10=0, rest 1
    s = summarize(
        _synthia_like_matrix(), [f"c{i}" for i in range(19)], ["mIoU16", "mIoU13", "mIoU19"]
    )
    expected19 = (1 / 2 + 1 / 2 + 2 / 3 + 0 + 15) / 19
    expected16 = (1 / 2 + 1 / 2 + 2 / 3 + 13) / 16  # without terrain, truck, train
    expected13 = (1 / 2 + 12) / 13  # also without wall, fence, pole
    assert s["mIoU19"] == pytest.approx(100 * expected19)
    assert s["mIoU16"] == pytest.approx(100 * expected16)
    assert s["mIoU13"] == pytest.approx(100 * expected13)
    assert s["mIoU"] == s["mIoU16"]  # the first listed metric is the headline
    assert s["metrics"] == ["mIoU16", "mIoU13", "mIoU19"]
    # not the README shortcut mIoU19 * 19/16, which assumes the three missing classes score 0
    assert s["mIoU16"] != pytest.approx(s["mIoU19"] * 19 / 16)


def test_subset_with_an_absent_class_is_a_nanmean():
    m = torch.zeros(19, 19, dtype=torch.int64)
    m[0, 0] = m[1, 1] = 4
    m[2, 1] = 4  # building predicted as sidewalk
    s = summarize(m, [f"c{i}" for i in range(19)], ["mIoU13"])
    # present in labels or predictions: road 1, sidewalk 4/8, building 0
    assert s["mIoU13"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)


def test_table_lists_each_metric_in_order_and_unknown_names_fail():
    s = summarize(
        _synthia_like_matrix(), [f"c{i}" for i in range(19)], ["mIoU16", "mIoU13", "mIoU19"]
    )
    lines = format_table(s).splitlines()
    names = [line.split()[0] for line in lines if line.startswith("mIoU")]
    assert names == ["mIoU16", "mIoU13", "mIoU19"]
    (line13,) = [line for line in lines if line.startswith("mIoU13")]
    assert line13.split()[1] == f"{s['mIoU13']:.1f}" == "96.2"
    with pytest.raises(ValueError, match="unknown metric 'mIoU7'"):
        summarize(_synthia_like_matrix(), [f"c{i}" for i in range(19)], ["mIoU7"])


def test_subsets_match_the_reference_class_lists():
    from duda.data.classes import CLASS_NAMES, CLASS_SUBSETS

    names16 = {CLASS_NAMES[c] for c in CLASS_SUBSETS["mIoU16"]}
    assert set(CLASS_NAMES) - names16 == {"terrain", "truck", "train"}
    names13 = {CLASS_NAMES[c] for c in CLASS_SUBSETS["mIoU13"]}
    assert names16 - names13 == {"wall", "fence", "pole"}
