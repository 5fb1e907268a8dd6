"""The pseudo-label border mask `valid` of training samples (reference sheet §4, margins v2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from duda.config import DomainConfig
from duda.data.build import build_domain
from duda.data.transforms import MEAN, STD, border_invalid_mask, build_train_transform

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _restore(image: torch.Tensor) -> np.ndarray:
    """Normalised CHW back to HxWx3 0-255 (rounded)."""
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (image * std + mean).round().permute(1, 2, 0).numpy()


def _bordered_image(h: int, w: int, margins: tuple[int, int, int, int]) -> np.ndarray:
    """Green inside the margins, red on the border strips."""
    top, bottom, left, right = margins
    image = np.empty((h, w, 3), np.uint8)
    image[:] = RED
    image[top : h - bottom, left : w - right] = GREEN
    return image


def test_border_mask_by_hand():
    invalid = border_invalid_mask(6, 8, (1, 2, 3, 1))
    expected = np.array(
        [
            [1, 1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 0, 0, 0, 0, 1],
            [1, 1, 1, 0, 0, 0, 0, 1],
            [1, 1, 1, 0, 0, 0, 0, 1],
            [1, 1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1, 1, 1],
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(invalid, expected)
    assert not border_invalid_mask(6, 8, (0, 0, 0, 0)).any()
    assert not border_invalid_mask(6, 8, None).any()
    assert border_invalid_mask(6, 8, (0, 100, 0, 0)).all()  # a margin beyond the image


@pytest.mark.parametrize("with_label", [False, True])
def test_mask_follows_resize_crop_flip_and_padding(with_label: bool):
    """Resize by exactly 1/2 with even margins keeps colours unmixed, so after resize + pad +
    crop + flip the mask's zeros must coincide with the red border and the black padding."""
    margins = (10, 30, 12, 8)
    image = _bordered_image(200, 160, margins)
    # Resized to 100x80; a 112-row crop needs 12 rows of padding at the bottom.
    tf = build_train_transform(
        crop_hw=(112, 64), resize_hw=(100, 80), flip_p=0.5, seed=3, pseudo_margins=margins
    )
    label = np.zeros((200, 160), np.uint8) if with_label else None
    saw_left_border = saw_right_border = False
    for _ in range(40):
        out = tf(image, label)
        assert ("label" in out) == with_label
        valid = out["valid"]
        assert valid.dtype == torch.uint8 and valid.shape == (112, 64)
        rgb = _restore(out["image"])
        is_green = (rgb == GREEN).all(axis=-1)
        np.testing.assert_array_equal(valid.numpy(), is_green.astype(np.uint8))
        assert not valid[100:].any()  # padding rows
        assert valid[5:100].any()
        saw_left_border |= bool((rgb[50, 0] == RED).all())
        saw_right_border |= bool((rgb[50, -1] == RED).all())
    assert saw_left_border and saw_right_border  # crops hit both side margins (and flips)


def test_cityscapes_margins_give_the_daformer_rows():
    """[30, 240, 30, 30] at 2048x1024, resized to 1024x512 with 512x512 crops spanning the full
    height, must zero the top 15 and bottom 120 rows (DAFormer's v1 numbers)."""
    image = np.zeros((1024, 2048, 3), np.uint8)
    tf = build_train_transform(
        crop_hw=(512, 512), resize_hw=(512, 1024), seed=0, pseudo_margins=[30, 240, 30, 30]
    )
    for _ in range(3):
        valid = tf(image, None)["valid"].numpy()
        rows = valid.any(axis=1)
        assert not rows[:15].any() and not rows[392:].any()
        assert rows[15:392].all()


def test_no_margins_means_all_valid():
    tf = build_train_transform(crop_hw=(16, 16), seed=0)
    out = tf(np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30), np.uint8))
    assert out["valid"].dtype == torch.uint8 and bool(out["valid"].all())


@pytest.mark.parametrize("bad", [[1, 2, 3], [1, 2, 3, -1], [1.5, 0, 0, 0]])
def test_bad_margins_are_refused(bad):
    with pytest.raises(ValueError, match=r"pseudo_margins must be \[top, bottom, left, right\]"):
        build_train_transform(crop_hw=(16, 16), pseudo_margins=bad)


@pytest.mark.parametrize("train_labels", [False, True])
def test_target_training_items_carry_valid(tiny_layouts: Path, train_labels: bool):
    cfg = OmegaConf.structured(
        DomainConfig(
            kind="cityscapes",
            root=str(tiny_layouts / "cityscapes"),
            crop_hw=[48, 32],
            pseudo_margins=[4, 8, 2, 2],
        )
    )
    data = build_domain(cfg, seed=0, with_val=True, train_labels=train_labels)
    item = data.train[0]
    assert item["valid"].shape == (48, 32)
    assert ("label" in item) == train_labels
    # The crop spans the full 48-row height: rows 0-3 and 40-47 are border rows.
    rows = item["valid"].numpy().any(axis=1)
    assert not rows[:4].any() and not rows[40:].any() and rows[4:40].all()
    assert "valid" not in data.val[0]  # evaluation items do not need it
