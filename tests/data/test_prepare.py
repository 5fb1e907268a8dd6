"""`python -m duda.data.prepare` on tiny datasets in each owner's encoding.

Expected train IDs come from hand tables copied from the reference sheet (§11), not from the
code under test; counts are band widths times heights.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from layouts import (
    BAND,
    H,
    bands,
    make_acdc,
    make_cityscapes,
    make_darkzurich,
    make_gta,
    make_synthia,
    write_gta_label,
)
from PIL import Image

from duda.data.datasets import BadSampleError, DatasetLayoutError
from duda.data.prepare import SAMPLES_FILE, STATS_FILE, main, prepare

# Reference sheet §11: Cityscapes/GTA5 label ID -> train ID, everything else 255.
CS_TABLE = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10}
CS_TABLE |= {24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
# Reference sheet §11: SYNTHIA class ID -> train ID (16, 18, 20 listed though never present).
SYN_TABLE = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10}
SYN_TABLE |= {10: 11, 17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18}
BAND_PX = H * BAND


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im)


def _expected(ids, table) -> np.ndarray:
    return bands([table.get(i, 255) for i in ids])


def _json(path: Path):
    return json.loads(path.read_text())


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_gta_all_label_ids_to_train_ids(tmp_path):
    ids = list(range(34))
    (label,) = make_gta(tmp_path, [bands(ids)])
    original = label.read_bytes()
    report = prepare("gta", tmp_path, progress=False)
    assert report.converted == 1 and not report.skipped
    converted = tmp_path / "labels/00001_labelTrainIds.png"
    assert np.array_equal(_read(converted), _expected(ids, CS_TABLE))
    assert label.read_bytes() == original  # the original stays as shipped


def test_cityscapes_label_ids_and_val_split(tmp_path):
    ids = list(range(34))
    make_cityscapes(tmp_path, {"train": [bands(ids)], "val": [bands([26, 0, 7])]})
    prepare("cityscapes", tmp_path, progress=False)
    gt = tmp_path / "gtFine"
    train = gt / "train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"
    val = gt / "val/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"
    assert np.array_equal(_read(train), _expected(ids, CS_TABLE))
    assert np.array_equal(_read(val), bands([13, 255, 0]))
    # statistics cover the training split only
    files = [e["file"] for e in _json(tmp_path / STATS_FILE)]
    assert files == ["gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"]


def test_synthia_16bit_last_channel_to_train_ids(tmp_path):
    ids = list(range(23))
    make_synthia(tmp_path, [bands(ids, np.uint16)])
    prepare("synthia", tmp_path, progress=False)
    converted = tmp_path / "GT/LABELS/0000000_labelTrainIds.png"
    assert np.array_equal(_read(converted), _expected(ids, SYN_TABLE))
    stats = _json(tmp_path / STATS_FILE)
    # 16 classes occur once each (ID 16/18/20 map to terrain/truck/train as the reference does)
    assert stats == [
        {"file": "GT/LABELS/0000000_labelTrainIds.png", **{str(c): BAND_PX for c in range(19)}}
    ]


def test_statistics_format_and_min_pixels(tmp_path):
    # label 1: road, road, car, unlabelled; label 2: road, bicycle x3 (each band 32 px)
    make_gta(tmp_path, [bands([7, 7, 26, 0]), bands([7, 33, 33, 33])])
    prepare("gta", tmp_path, min_pixels=63, progress=False)
    f1, f2 = "labels/00001_labelTrainIds.png", "labels/00002_labelTrainIds.png"
    assert _json(tmp_path / STATS_FILE) == [
        {"file": f1, "0": 64, "13": 32},
        {"file": f2, "0": 32, "18": 96},
    ]
    with_class = _json(tmp_path / SAMPLES_FILE)
    assert list(with_class) == [str(c) for c in range(19)]
    assert with_class["0"] == [[f1, 64]]
    assert with_class["18"] == [[f2, 96]]
    assert all(with_class[str(c)] == [] for c in range(19) if c not in (0, 18))
    # "more than" min_pixels: a file with exactly 64 pixels of road is no longer listed
    prepare("gta", tmp_path, min_pixels=64, progress=False)
    assert _json(tmp_path / SAMPLES_FILE)["0"] == []
    assert list(_json(tmp_path / STATS_FILE)[0]) == ["file", "0", "13"]


def test_acdc_and_darkzurich_ship_train_ids_only_statistics(tmp_path):
    acdc = tmp_path / "acdc"
    make_acdc(
        acdc,
        {
            ("fog", "train"): [bands([0, 255, 18])],
            ("snow", "train"): [bands([5, 5, 5])],
            ("night", "train"): [],
            ("rain", "train"): [],
            ("fog", "val"): [bands([1])],
        },
    )
    for cond in ("night", "rain"):  # empty condition folders, as a partial download may leave
        (acdc / "rgb_anon" / cond / "train").mkdir(parents=True)
        (acdc / "gt" / cond / "train").mkdir(parents=True)
    before = _tree(acdc)
    prepare("acdc", acdc, progress=False)
    after = _tree(acdc)
    assert set(after) - set(before) == {STATS_FILE, SAMPLES_FILE}  # nothing converted
    assert _json(acdc / STATS_FILE) == [
        {"file": "gt/fog/train/GOPR1025/GOPR1025_frame_000000_gt_labelTrainIds.png"}
        | {"0": 32, "18": 32},
        {"file": "gt/snow/train/GOPR1155/GOPR1155_frame_000000_gt_labelTrainIds.png", "5": 96},
    ]
    dz = tmp_path / "dz"
    make_darkzurich(dz, [bands([10, 10, 2])])
    prepare("darkzurich", dz, progress=False)
    assert _json(dz / STATS_FILE) == [
        {"file": "gt/val/night/GOPR0356/GOPR0356_frame_000000_gt_labelTrainIds.png"}
        | {"2": 32, "10": 64}
    ]


def test_second_run_skips_finished_files(tmp_path):
    labels = make_gta(tmp_path, [bands([7, 26]), bands([8, 8]), bands([11, 0])])
    first = prepare("gta", tmp_path, progress=False)
    assert (first.converted, first.cached) == (3, 0)
    tree = _tree(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*_labelTrainIds.png")}
    second = prepare("gta", tmp_path, progress=False)
    assert (second.converted, second.counted, second.cached) == (0, 0, 3)
    assert _tree(tmp_path) == tree
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    # a label replaced after preparation is converted again, and only that one
    time.sleep(0.01)
    write_gta_label(labels[1], bands([33, 33]))
    third = prepare("gta", tmp_path, progress=False)
    assert (third.converted, third.cached) == (1, 2)
    assert _json(tmp_path / STATS_FILE)[1] == {"file": "labels/00002_labelTrainIds.png", "18": 64}


def test_interrupted_run_then_rerun_equals_an_uninterrupted_run(tmp_path):
    """Kill the CLI mid-way; no half-written label may survive, and a rerun must end with the
    very bytes of a run that was never interrupted."""
    rng = np.random.default_rng(0)
    ids = np.array(sorted(CS_TABLE) + [0, 1, 4])
    labels = [ids[rng.integers(0, len(ids), (96, 192))].astype(np.uint8) for _ in range(400)]
    make_gta(tmp_path / "a", labels)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    prepare("gta", tmp_path / "a", progress=False)

    b = tmp_path / "b"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "duda.data.prepare", "gta", "--root", str(b), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list((b / "labels").glob("*_labelTrainIds.png"))) < 20:
        assert proc.poll() is None, "prepare ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted((b / "labels").glob("*_labelTrainIds.png"))
    assert 20 <= len(done) < 400 and not (b / STATS_FILE).exists()
    for path in done:  # every label that exists is complete and right
        expected = _read(tmp_path / "a/labels" / path.name)
        assert np.array_equal(_read(path), expected)

    assert main(["gta", "--root", str(b), "--workers", "2", "--quiet"]) == 0
    assert _tree(b) == _tree(tmp_path / "a")


@pytest.mark.parametrize(
    "dataset,expected",
    [
        ("gta", "images/00001.png"),
        ("synthia", "GT/LABELS/0000000.png"),
        ("cityscapes", "gtFine/{train,val}/<city>/"),
        ("acdc", "gt/{fog,night,rain,snow}/{train,val}/<seq>/"),
        ("darkzurich", "gt/val/night/<seq>/"),
    ],
)
def test_missing_root_names_layout_and_command(tmp_path, dataset, expected, capsys):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetLayoutError) as err:
        prepare(dataset, root, progress=False)
    msg = str(err.value)
    assert str(root) in msg and expected in msg
    assert f"python -m duda.data.prepare {dataset} --root {root}" in msg
    assert "Download" in msg
    assert main([dataset, "--root", str(root)]) == 2
    assert "prepare: error:" in capsys.readouterr().err


def test_wrong_layout_names_the_missing_folder(tmp_path):
    make_cityscapes(tmp_path, {"train": [bands([7])]})
    shutil.rmtree(tmp_path / "gtFine")
    with pytest.raises(DatasetLayoutError, match=r"gtFine/\{train,val\}"):
        prepare("cityscapes", tmp_path, progress=False)
    make_acdc(tmp_path / "acdc", {("fog", "train"): [bands([1])]})
    with pytest.raises(DatasetLayoutError, match=r"Missing folder .*rgb_anon/night/train"):
        from duda.data.datasets import find_acdc

        find_acdc(tmp_path / "acdc", "train", conditions=["night"])


def _bad_gta(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A 3-image GTA5 set whose second file is bad in the given way -> (root, message part)."""
    labels = make_gta(tmp_path, [bands([7]), bands([26]), bands([33])])
    bad = labels[1]
    if case == "no_label":
        bad.unlink()
        return tmp_path, "images/00002.png has no label"
    if case == "no_image":
        (tmp_path / "images/00002.png").unlink()
        return tmp_path, "labels/00002.png has no image"
    if case == "size":
        write_gta_label(bad, np.full((4, 4), 7, np.uint8))
        return tmp_path, "00002.png is 4x4 but image"
    if case == "values":
        write_gta_label(bad, bands([40]))
        return tmp_path, "holds values 40, which are not Cityscapes label IDs (0-33)"
    if case == "truncated":
        data = bad.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        return tmp_path, "cannot read label"
    raise AssertionError(case)


CASES = ["no_label", "no_image", "size", "values", "truncated"]


@pytest.mark.parametrize("case", CASES)
def test_bad_file_is_skipped_and_listed(tmp_path, case):
    root, message = _bad_gta(tmp_path, case)
    with pytest.warns(UserWarning, match="skipping"):
        report = prepare("gta", root, progress=False)
    assert len(report.skipped) == 1 and message in report.skipped[0]
    files = [e["file"] for e in _json(root / STATS_FILE)]
    assert files == ["labels/00001_labelTrainIds.png", "labels/00003_labelTrainIds.png"]
    assert not (root / "labels/00002_labelTrainIds.png").exists()


@pytest.mark.parametrize("case", CASES)
def test_bad_file_stops_with_error(tmp_path, case, capsys):
    root, message = _bad_gta(tmp_path, case)
    with pytest.raises(BadSampleError, match="00002") as err:
        prepare("gta", root, on_bad_sample="error", progress=False)
    assert message in str(err.value)
    assert main(["gta", "--root", str(root), "--on-bad-sample", "error", "--quiet"]) == 1
    assert message in capsys.readouterr().err


def test_values_outside_known_ids_per_encoding(tmp_path):
    make_synthia(tmp_path / "syn", [bands([3, 30], np.uint16)])
    with pytest.raises(BadSampleError, match=r"values 30, which are not SYNTHIA class IDs"):
        prepare("synthia", tmp_path / "syn", on_bad_sample="error", progress=False)
    acdc = {(c, "train"): [bands([0, 19, 254])] for c in ("fog", "night", "rain", "snow")}
    make_acdc(tmp_path / "acdc", acdc)
    with pytest.raises(BadSampleError, match=r"values 19, 254, which are not train IDs"):
        prepare("acdc", tmp_path / "acdc", on_bad_sample="error", progress=False)


def test_temporaries_of_live_runs_are_kept_dead_ones_removed(tmp_path):
    """Seeds of a sweep may prepare the same fresh benchmark at once: a temporary file whose
    writer still runs is not theirs to delete; one left by a killed run is removed."""
    make_gta(tmp_path, [bands([7])])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"labels/.00001_labelTrainIds.png.{other.pid}.prepare-tmp"
        live.write_bytes(b"half")
        prepare("gta", tmp_path, progress=False)
        assert live.exists()
    finally:
        other.kill()
        other.wait()
    prepare("gta", tmp_path, progress=False)
    assert not live.exists()
