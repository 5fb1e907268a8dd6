"""The embedded synthetic benchmark: real on-disk layouts, determinism, and a real domain shift."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from duda.data import synth
from duda.data.classes import CLASS_NAMES, LABEL_TO_TRAIN, TRAIN_TO_LABEL

SIZE = (128, 64)
# Cityscapes IDs the generator may write: the 19 classes plus ignored ones real data also has.
VALID_IDS = set(LABEL_TO_TRAIN) | {0, 1, 4, 6}
SAMPLE = 40


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _small(out: Path, **kw) -> None:
    args = dict(seed=3, source_count=3, target_count=4, val_count=2, size=SIZE)
    synth.generate(out, **{**args, **kw})


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    _small(out)
    return out


@pytest.fixture(scope="module")
def sample() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """SAMPLE in-memory renders per domain at the default size (no disk needed)."""
    return {
        dom: [synth.render_sample(0, dom, i, (256, 128)) for i in range(SAMPLE)]
        for dom in ("source", "train")
    }


def test_layout_has_the_real_dataset_names(bench: Path) -> None:
    names = set(_files(bench))
    gta = {f"gta/{kind}/{i:05d}.png" for kind in ("images", "labels") for i in (1, 2, 3)}
    assert gta <= names
    pattern = re.compile(
        r"cityscapes/(leftImg8bit|gtFine)/(train|val)/([a-z]+)/"
        r"\3_(\d{6})_(\d{6})_(leftImg8bit|gtFine_labelIds)\.png"
    )
    city_files = names - gta
    assert len(city_files) == 2 * (4 + 2)
    for name in city_files:
        match = pattern.fullmatch(name)
        assert match, name
        assert (match.group(1) == "leftImg8bit") == (match.group(6) == "leftImg8bit")
        assert match.group(3) in (
            synth.TRAIN_CITIES if match.group(2) == "train" else synth.VAL_CITIES
        )
    for name in city_files:  # every image has its label and vice versa
        twin = (
            name.replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit", "_gtFine_labelIds")
            if "leftImg8bit" in name
            else name.replace("gtFine", "leftImg8bit", 1).replace(
                "_gtFine_labelIds", "_leftImg8bit"
            )
        )
        assert twin in names
    meta = json.loads((bench / synth.META_NAME).read_text())
    assert meta["format_version"] == synth.FORMAT_VERSION and meta["complete"]
    assert meta["args"] == {
        "seed": 3,
        "source_count": 3,
        "target_count": 4,
        "val_count": 2,
        "size": list(SIZE),
        "target_style": "day",
    }


def test_labels_are_cityscapes_label_ids(bench: Path) -> None:
    for path in (bench / "gta" / "labels").glob("*.png"):
        with Image.open(path) as im:
            assert im.mode == "P"
            palette = im.getpalette()
            ids = set(np.unique(np.asarray(im)).tolist())
        assert ids <= VALID_IDS, ids - VALID_IDS
        assert tuple(palette[3 * 7 : 3 * 8]) == (128, 64, 128)  # road, as in real GTA5 labels
        assert tuple(palette[3 * 26 : 3 * 27]) == (0, 0, 142)  # car
    for path in (bench / "cityscapes" / "gtFine").rglob("*.png"):
        with Image.open(path) as im:
            assert im.mode == "L"
            assert set(np.unique(np.asarray(im)).tolist()) <= VALID_IDS


def test_images_and_labels_have_the_requested_size(bench: Path) -> None:
    for path in bench.rglob("*.png"):
        with Image.open(path) as im:
            assert im.size == SIZE, path
            is_label = "labels" in path.parts or "gtFine" in path.parts
            assert im.mode == ("RGB" if not is_label else im.mode)


def test_same_seed_same_bytes_other_seed_differs(bench: Path, tmp_path: Path) -> None:
    _small(tmp_path / "again")
    _small(tmp_path / "other", seed=4)
    assert _files(tmp_path / "again") == _files(bench)
    other = _files(tmp_path / "other")
    assert other.keys() == _files(bench).keys()
    assert all(other[k] != v for k, v in _files(bench).items() if "images" in k or "leftImg" in k)


def test_workers_do_not_change_the_output(bench: Path, tmp_path: Path) -> None:
    _small(tmp_path / "pool", workers=2)
    assert _files(tmp_path / "pool") == _files(bench)


def _shares(sample: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    counts = np.bincount(np.concatenate([lab.ravel() for _, lab in sample]), minlength=256)
    return np.array([counts[TRAIN_TO_LABEL[t]] for t in range(19)]) / counts.sum()


@pytest.mark.parametrize("domain", ["source", "train"])
def test_every_class_appears_with_realistic_imbalance(sample: dict, domain: str) -> None:
    shares = _shares(sample[domain])
    missing = [CLASS_NAMES[t] for t in range(19) if shares[t] == 0]
    assert not missing
    share = dict(zip(CLASS_NAMES, shares, strict=True))
    assert share["road"] > 10 * share["bicycle"]
    for stuff in ("road", "building", "vegetation", "sky", "sidewalk"):
        for rare in ("traffic light", "traffic sign", "rider", "motorcycle", "bicycle", "train"):
            assert share[stuff] > share[rare], (stuff, rare)


def _mean_color(sample: list[tuple[np.ndarray, np.ndarray]], label_id: int) -> np.ndarray:
    pixels = np.concatenate([img[lab == label_id] for img, lab in sample])
    return pixels.astype(np.float64).mean(axis=0)


@pytest.mark.parametrize("name", ["road", "sidewalk", "building", "vegetation", "terrain", "sky"])
def test_target_palette_differs_from_source(sample: dict, name: str) -> None:
    label_id = TRAIN_TO_LABEL[CLASS_NAMES.index(name)]
    gap = np.linalg.norm(
        _mean_color(sample["source"], label_id) - _mean_color(sample["train"], label_id)
    )
    assert gap > 30, f"{name}: mean colour moved only {gap:.1f}"


def test_night_is_far_darker_than_day() -> None:
    day = [synth.render_sample(0, "train", i, SIZE, "day")[0].mean() for i in range(8)]
    night = [synth.render_sample(0, "train", i, SIZE, "night")[0].mean() for i in range(8)]
    assert np.mean(night) < 0.5 * np.mean(day)


def test_fog_brightens_and_flattens_but_keeps_the_labels() -> None:
    pairs = [
        (
            synth.render_sample(0, "val", i, SIZE, "day"),
            synth.render_sample(0, "val", i, SIZE, "fog"),
        )
        for i in range(6)
    ]
    assert all(np.array_equal(day[1], fog[1]) for day, fog in pairs)
    day = np.array([(d.mean(), d.std() / d.mean()) for (d, _), _ in pairs])
    fog = np.array([(f.mean(), f.std() / f.mean()) for _, (f, _) in pairs])
    assert fog[:, 0].mean() > day[:, 0].mean() + 10
    assert fog[:, 1].mean() < 0.85 * day[:, 1].mean()  # relative contrast


def test_cli_rejects_a_bad_size(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "duda.data.synth", "--out", str(tmp_path / "x"), "--size", "256x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "expected WxH like 256x128" in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "bad",
    [
        dict(target_style="dusk"),
        dict(source_count=-1),
        dict(size=(8, 8)),
        dict(workers=0),
        dict(seed=-2),
    ],
)
def test_api_rejects_bad_arguments(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        _small(tmp_path, **bad)


def test_cli_skips_identical_and_refuses_a_different_benchmark(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "b"
    common = [
        "--out",
        str(out),
        "--source-count",
        "2",
        "--target-count",
        "1",
        "--val-count",
        "1",
        "--size",
        "128x64",
    ]
    assert synth.main([*common, "--seed", "0"]) == 0
    before = _files(out)
    assert synth.main([*common, "--seed", "0"]) == 0
    assert "skipping" in capsys.readouterr().err
    assert synth.main([*common, "--seed", "1"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert _files(out) == before
    assert synth.main([*common, "--seed", "1", "--overwrite"]) == 0
    assert _files(out) != before
    assert json.loads((out / synth.META_NAME).read_text())["args"]["seed"] == 1


def test_never_touches_data_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "gta" / "images").mkdir(parents=True)
    (tmp_path / "gta" / "images" / "real.png").write_bytes(b"not ours")
    with pytest.raises(synth.BenchmarkExistsError):
        _small(tmp_path, overwrite=True)
    assert (tmp_path / "gta" / "images" / "real.png").read_bytes() == b"not ours"
