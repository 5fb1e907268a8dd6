"""Loading SYNTHIA, ACDC and Dark Zurich from their shipped layouts, and bad files at load time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from layouts import H, bands, make_acdc, make_cityscapes, make_darkzurich, make_gta, make_synthia

from duda.data.datasets import (
    BadSampleError,
    BadSampleWarning,
    DatasetLayoutError,
    build_dataset,
    find_acdc,
    find_darkzurich,
)
from duda.data.prepare import prepare
from duda.data.transforms import build_eval_transform

EVAL = build_eval_transform()
ACDC_ALL = {
    (c, s): [bands([0, 13])] for c in ("fog", "night", "rain", "snow") for s in ("train", "val")
}


def _band_values(label: torch.Tensor | np.ndarray) -> list[int]:
    label = np.asarray(label)
    return [int(v) for v in label[0, ::4]]


def test_synthia_loads_train_ids_before_and_after_prepare(tmp_path):
    # SYNTHIA road, car, void, bicycle -> train IDs 0, 13, 255, 18 (reference sheet §11)
    make_synthia(tmp_path, [bands([3, 8, 0, 11], np.uint16)])
    before = build_dataset("synthia", tmp_path, "train", EVAL)[0]["label"]
    prepare("synthia", tmp_path, progress=False)
    after = build_dataset("synthia", tmp_path, "train", EVAL)[0]["label"]
    assert _band_values(before) == _band_values(after) == [0, 13, 255, 18]


def test_acdc_conditions_select_folders(tmp_path):
    make_acdc(tmp_path, ACDC_ALL)
    assert len(find_acdc(tmp_path, "train")) == 4
    night = find_acdc(tmp_path, "val", conditions=["night"])
    assert [s.image.parts[-4] for s in night] == ["night"]
    assert night[0].label.name.endswith("_gt_labelTrainIds.png")
    ds = build_dataset("acdc", tmp_path, "val", EVAL, conditions=["fog", "snow"])
    assert len(ds) == 2 and _band_values(ds[1]["label"]) == [0, 13]
    with pytest.raises(ValueError, match=r"unknown condition\(s\) \['sunny'\]"):
        find_acdc(tmp_path, "train", conditions=["sunny"])


def test_acdc_test_split_is_unlabelled(tmp_path):
    make_acdc(tmp_path, ACDC_ALL, test=2)
    ds = build_dataset("acdc", tmp_path, "test", EVAL, load_labels=False, substitute=False)
    assert len(ds) == 8
    item = ds[0]
    assert "label" not in item and item["image_hw"].tolist() == [H, 24]
    with pytest.raises(DatasetLayoutError, match="gt/fog/test"):
        find_acdc(tmp_path, "test")


def test_darkzurich_night_val_labelled_train_not(tmp_path):
    make_darkzurich(tmp_path, [bands([10, 2])], train=3, test=2)
    assert len(find_darkzurich(tmp_path, "val", conditions=["night"])) == 1
    assert len(find_darkzurich(tmp_path, "train", False, ["night"])) == 3
    assert len(find_darkzurich(tmp_path, "train", False, ["all"])) == 4  # + the day folder
    assert len(find_darkzurich(tmp_path, "test", False, ["night"])) == 2
    with pytest.raises(DatasetLayoutError, match="labels for val only"):
        find_darkzurich(tmp_path, "train", True, ["night"])


def test_cityscapes_test_split_without_labels(tmp_path):
    make_cityscapes(tmp_path, {"train": [bands([7])], "test": [bands([0])]})
    (tmp_path / "gtFine/test").rename(tmp_path / "elsewhere")  # test labels are not public
    assert len(build_dataset("cityscapes", tmp_path, "test", EVAL, load_labels=False)) == 1


# --------------------------------------------------------------------------- bad files at load


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _gta_with_truncated_image(tmp_path):
    make_gta(tmp_path, [bands([7, 7]), bands([26, 26]), bands([33, 33])])
    _truncate(tmp_path / "images/00002.png")
    return tmp_path


def test_unreadable_image_stops_with_its_name(tmp_path):
    ds = build_dataset("gta", _gta_with_truncated_image(tmp_path), "train", EVAL)
    with pytest.raises(BadSampleError, match=r"cannot read image .*00002.png") as err:
        ds[1]
    assert "dataset.on_bad_sample=skip" in str(err.value)


def test_unreadable_image_is_skipped_and_counted_once(tmp_path):
    ds = build_dataset(
        "gta", _gta_with_truncated_image(tmp_path), "train", EVAL, on_bad_sample="skip"
    )
    with pytest.warns(BadSampleWarning, match="00002.png"):
        item = ds[1]
    assert item["index"] == 2 and _band_values(item["label"]) == [18, 18]  # the next sample
    for _ in range(3):
        ds[1]
    assert ds.skipped_count == 1
    assert ds.skipped_files() == [str(tmp_path / "images/00002.png")]


def test_skips_in_loader_workers_reach_the_main_process(tmp_path):
    ds = build_dataset(
        "gta", _gta_with_truncated_image(tmp_path), "train", EVAL, on_bad_sample="skip"
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    for _ in range(2):  # workers print their warnings; the count is shared with them
        assert len(list(loader)) == 3
    assert ds.skipped_count == 1


def test_bad_val_file_is_left_out_of_the_metric(tmp_path):
    """Evaluation sets keep their order: the bad file becomes an all-ignore item flagged bad."""
    from PIL import Image

    make_gta(tmp_path, [bands([7, 7]), bands([26, 26, 26]), bands([33, 33])])
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images/00002.png")
    ds = build_dataset("gta", tmp_path, "train", EVAL, on_bad_sample="skip", substitute=False)
    with pytest.warns(BadSampleWarning, match="00002.png is 12x8 but image .* is 4x4"):
        item = ds[1]
    assert item["bad"] is True and item["index"] == 1
    assert (item["label"] == 255).all() and ds.skipped_count == 1
    assert ds[0]["bad"] is False and ds[2]["bad"] is False


def test_label_values_outside_known_ids_at_load(tmp_path):
    from layouts import write_gta_label

    labels = make_gta(tmp_path, [bands([7, 7])])
    write_gta_label(labels[0], bands([7, 99]))
    ds = build_dataset("gta", tmp_path, "train", EVAL)
    with pytest.raises(BadSampleError, match="holds values 99, which are not Cityscapes label IDs"):
        ds[0]


def test_orphans_skipped_while_listing_are_counted(tmp_path):
    make_gta(tmp_path, [bands([7]), bands([26]), bands([33])])
    (tmp_path / "labels/00001.png").unlink()
    (tmp_path / "images/00003.png").unlink()
    with pytest.warns(BadSampleWarning):
        ds = build_dataset("gta", tmp_path, "train", EVAL, on_bad_sample="skip")
    assert len(ds) == 1 and ds.skipped_count == 2
