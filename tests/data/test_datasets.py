"""Dataset classes on hand-made GTA5/Cityscapes layouts with known label IDs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_png

from duda.data.datasets import BadSampleError, DatasetLayoutError, build_dataset, read_train_ids
from duda.data.transforms import MEAN, STD, build_eval_transform, build_train_transform

EXPECTED_BANDS = [0, 13, 255, 18]  # label IDs 7, 26, 0, 33 -> train IDs


def _bands(label: np.ndarray) -> list[int]:
    return [int(label[0, i * 16]) for i in range(4)]


def test_gta_palette_labels_read_as_indices(tiny_layouts: Path):
    label = read_train_ids(tiny_layouts / "gta/labels/00001.png")
    assert _bands(label) == EXPECTED_BANDS
    assert set(np.unique(label)) == set(EXPECTED_BANDS)


def test_converted_train_id_file_is_preferred(tiny_layouts: Path):
    from PIL import Image

    converted = np.full((48, 64), 5, np.uint8)
    Image.fromarray(converted).save(tiny_layouts / "gta/labels/00002_labelTrainIds.png")
    assert (read_train_ids(tiny_layouts / "gta/labels/00002.png") == 5).all()


@pytest.mark.parametrize(
    "kind,root,split,count",
    [
        ("gta", "gta", "train", 3),
        ("cityscapes", "cityscapes", "train", 2),
        ("cityscapes", "cityscapes", "val", 2),
    ],
)
def test_eval_items_keep_label_resolution(tiny_layouts, kind, root, split, count):
    ds = build_dataset(kind, tiny_layouts / root, split, build_eval_transform(resize_hw=(24, 32)))
    assert len(ds) == count
    item = ds[0]
    assert item["image"].shape == (3, 24, 32)  # image resized keep-ratio into 24x32
    assert item["label"].shape == (48, 64)  # label stays at file resolution for the metric
    assert _bands(item["label"].numpy()) == EXPECTED_BANDS


def test_train_crop_keeps_image_and_label_aligned(tmp_path):
    """Encode the column index in the image and in the label: after crop + flip both must
    still agree pixel by pixel."""
    h, w = 40, 120
    cols = np.tile(np.arange(w, dtype=np.uint8), (h, 1))
    image = np.stack([cols, cols, cols], axis=-1)
    tf = build_train_transform(crop_hw=(32, 48), cat_max_ratio=1.0, seed=1)
    for _ in range(20):
        out = tf(image, cols.copy())
        assert out["image"].shape == (3, 32, 48)
        restored = out["image"][0] * STD[0] + MEAN[0]
        assert torch.allclose(restored, out["label"].float(), atol=1e-3)


def test_cat_max_ratio_avoids_dominated_crops():
    """Left 90% of the label is one class; plain crops are usually all that class."""
    label = np.zeros((32, 200), np.uint8)
    label[:, 180:] = 1
    image = np.zeros((32, 200, 3), np.uint8)
    plain = build_train_transform(crop_hw=(32, 32), cat_max_ratio=1.0, flip_p=0, seed=0)
    guarded = build_train_transform(crop_hw=(32, 32), cat_max_ratio=0.75, flip_p=0, seed=0)

    def mixed_share(tf):
        return np.mean([len(np.unique(tf(image, label)["label"])) > 1 for _ in range(200)])

    assert mixed_share(guarded) > mixed_share(plain) + 0.3


def test_small_images_are_padded_with_ignore():
    image = np.zeros((20, 20, 3), np.uint8)
    label = np.zeros((20, 20), np.uint8)
    out = build_train_transform(crop_hw=(32, 32), seed=0)(image, label)
    assert out["label"].shape == (32, 32)
    assert (out["label"] == 255).sum() == 32 * 32 - 20 * 20


def test_missing_root_names_layout(tmp_path):
    with pytest.raises(DatasetLayoutError) as err:
        build_dataset("cityscapes", tmp_path / "nowhere", "train", build_eval_transform())
    msg = str(err.value)
    assert "leftImg8bit/{train,val,test}" in msg and "gtFine" in msg and "DUDA_DATA" in msg
    assert "python -m duda.data.prepare cityscapes --root" in msg
    with pytest.raises(DatasetLayoutError, match="images/00001.png"):
        build_dataset("gta", tmp_path / "nowhere", "train", build_eval_transform())


def test_image_without_label_is_named(tiny_layouts):
    (tiny_layouts / "gta/labels/00002.png").unlink()
    with pytest.raises(BadSampleError, match="00002.png has no label"):
        build_dataset("gta", tiny_layouts / "gta", "train", build_eval_transform())


def test_label_of_wrong_size_is_rejected(tiny_layouts):
    write_png(tiny_layouts / "gta/labels/00001.png", np.zeros((10, 10), np.uint8), palette=True)
    ds = build_dataset("gta", tiny_layouts / "gta", "train", build_eval_transform())
    with pytest.raises(ValueError, match="00001.png is 10x10 but image"):
        ds[0]


def test_preview_tiles_images_and_colored_labels(tiny_layouts):
    from duda.data.preview import preview

    grid = preview(tiny_layouts, count=2)
    assert grid.shape == (2 * 48, 4 * 64, 3)
    # label tile, first band: road (train ID 0) in the Cityscapes palette
    assert tuple(grid[0, 64]) == (128, 64, 128)
    assert tuple(grid[0, 64 + 32]) == (0, 0, 0)  # ignored band stays black
