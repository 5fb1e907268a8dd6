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
