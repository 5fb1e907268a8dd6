"""Rare-class sampling: the class probabilities, the class and frame draws, the crop re-draws."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import write_png
from omegaconf import OmegaConf

from duda.config import DomainConfig, RCSConfig
from duda.data.build import build_domain
from duda.data.datasets import SegmentationDataset, build_dataset
from duda.data.loaders import train_loader
from duda.data.rcs import RareClassDataset, RCSStatsError, rcs_class_probs
from duda.data.transforms import build_train_transform

H, W = 64, 192
ROAD, CAR, BICYCLE = 0, 13, 18  # train IDs of Cityscapes label IDs 7, 26, 33
LABEL_ID = {ROAD: 7, CAR: 26, BICYCLE: 33}


def _label(regions: dict[int, tuple[int, int]]) -> np.ndarray:
    """Road everywhere, other train IDs in the given column ranges, as GTA label IDs."""
    label = np.full((H, W), LABEL_ID[ROAD], np.uint8)
    for train_id, (x0, x1) in regions.items():
        label[:, x0:x1] = LABEL_ID[train_id]
    return label


# Frame number -> column ranges. Bicycle: 40 columns (2560 px) at the right edge, in frames 1-3.
# Car: 10 columns (640 px) in frames 2 and 4, below min_pixels, so never a car candidate.
FRAMES = {
    1: {BICYCLE: (152, 192)},
    2: {BICYCLE: (152, 192), CAR: (0, 10)},
    3: {BICYCLE: (152, 192)},
    4: {CAR: (0, 10)},
    5: {},
}
MIN_PIXELS = 2000


def _write_stats(root: Path, entries: dict[int, dict[int, int]], min_pixels: int) -> None:
    """The two statistics files in the format `duda.data.prepare` writes, from given counts."""
    stats, with_class = [], {}
    for n, counts in entries.items():
        file = f"labels/{n:05d}_labelTrainIds.png"
        stats.append({"file": file, **{str(c): v for c, v in counts.items()}})
        for c, v in counts.items():
            if v > min_pixels:
                with_class.setdefault(str(c), []).append([file, v])
    (root / "sample_class_stats.json").write_text(json.dumps(stats))
    (root / "samples_with_class.json").write_text(json.dumps(with_class))


def _counts(regions: dict[int, tuple[int, int]]) -> dict[int, int]:
    label = _label(regions)
    return {t: int((label == lab).sum()) for t, lab in LABEL_ID.items() if (label == lab).any()}


@pytest.fixture
def gta_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "gta"
    for n, regions in FRAMES.items():
        write_png(root / f"images/{n:05d}.png", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        write_png(root / f"labels/{n:05d}.png", _label(regions), palette=True)
    _write_stats(root, {n: _counts(r) for n, r in FRAMES.items()}, min_pixels=1000)
    return root


def _dataset(root: Path, seed: int = 0) -> SegmentationDataset:
    tf = build_train_transform(crop_hw=(64, 64), cat_max_ratio=1.0, seed=seed)
    return build_dataset("gta", root, "train", tf)


def _rcs(root: Path, temperature: float = 0.01, ratio: float = 0.5, seed: int = 0):
    return RareClassDataset.from_root(
        _dataset(root, seed), root, temperature, MIN_PIXELS, ratio, seed=seed
    )


def test_class_probs_by_hand():
    stats = [
        {"file": "a", "0": 600, "1": 300},
        {"file": "b", "1": 0, "2": 100, "255": 50, "3": 0},  # 255 and zero counts don't count
    ]
    # f = 0.6, 0.3, 0.1 -> (1 - f) / 0.5 = 0.8, 1.4, 1.8
    e = [math.exp(0.8), math.exp(1.4), math.exp(1.8)]
    expected = {0: e[0] / sum(e), 1: e[1] / sum(e), 2: e[2] / sum(e)}
    probs = rcs_class_probs(stats, temperature=0.5)
    assert probs.keys() == expected.keys()
    for c in expected:
        assert probs[c] == pytest.approx(expected[c], rel=1e-12)
    assert probs[2] == pytest.approx(0.490629, abs=1e-6)
    # The reference temperature: a frequency gap of 0.1 is a factor e^10 in probability.
    sharp = rcs_class_probs(stats, temperature=0.01)
    assert sharp[2] / sharp[1] == pytest.approx(math.exp(20), rel=1e-9)
    assert sharp[1] / sharp[0] == pytest.approx(math.exp(30), rel=1e-9)


def test_large_temperature_is_uniform():
    probs = rcs_class_probs([{"file": "a", "0": 9000, "5": 1}], temperature=1e6)
    assert probs == pytest.approx({0: 0.5, 5: 0.5}, abs=1e-6)


def test_class_draws_follow_p_and_frames_hold_the_class(tmp_path: Path, gta_root: Path):
    """Hand-written statistics with three well-spread classes (not the image contents)."""
    counts = {1: {0: 5000, 13: 4000}, 2: {0: 3000, 18: 3500}, 3: {13: 2500, 18: 2100}, 4: {0: 10}}
    _write_stats(gta_root, counts, min_pixels=MIN_PIXELS)
    ds = _rcs(gta_root, temperature=0.3)
    totals = {0: 8010, 13: 6500, 18: 5600}
    s = sum(totals.values())
    e = {c: math.exp((1 - n / s) / 0.3) for c, n in totals.items()}
    expected = {c: v / sum(e.values()) for c, v in e.items()}
    assert ds.class_probs == pytest.approx(expected, rel=1e-9)
    # Candidate frames (dataset positions are frame number - 1): > MIN_PIXELS of the class.
    allowed = {0: {0, 1}, 13: {0, 2}, 18: {1, 2}}
    n = 6000
    draws = [ds.draw() for _ in range(n)]
    for c, i in draws:
        assert i in allowed[c]
    for c, p in expected.items():
        freq = sum(d[0] == c for d in draws) / n
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n), (c, freq, p)
    # Frames of a class are drawn uniformly.
    road_frames = [i for c, i in draws if c == 0]
    assert abs(np.mean(np.array(road_frames) == 0) - 0.5) < 4 * math.sqrt(0.25 / len(road_frames))


def test_crops_hold_the_drawn_class(gta_root: Path):
    """Bicycle fills the rightmost 40 of 192 columns; a 64-wide crop holds > 1000 bicycle pixels
    (16+ columns) for 25 of its 129 positions, so a plain crop succeeds ~19% of the time and
    ten tries ~88%."""
    ds = _rcs(gta_root)
    assert ds.class_probs[BICYCLE] > 0.999  # rare at T = 0.01
    assert ds.candidates[BICYCLE] == [0, 1, 2]  # frames 1-3; car never reaches 2000 px
    threshold = MIN_PIXELS * 0.5
    hits, plain_hits, draws = 0, 0, 150
    plain = _dataset(gta_root, seed=1)
    for k in range(draws):
        item = ds[k]
        assert item["rcs_class"] == BICYCLE and item["index"] in (0, 1, 2)
        assert item["image"].shape == (3, 64, 64) and "valid" in item
        hits += int((item["label"] == BICYCLE).sum()) > threshold
        plain_hits += int((plain[k % 3]["label"] == BICYCLE).sum()) > threshold
    assert hits / draws > 0.75
    assert plain_hits / draws < 0.35


def test_missing_statistics_name_the_file_and_the_command(tmp_path: Path, gta_root: Path):
    (gta_root / "samples_with_class.json").unlink()
    with pytest.raises(RCSStatsError) as err:
        _rcs(gta_root)
    message = str(err.value)
    assert str(gta_root / "samples_with_class.json") in message
    assert f"python -m duda.data.prepare gta --root {gta_root}" in message
    (gta_root / "sample_class_stats.json").unlink()
    with pytest.raises(RCSStatsError, match="sample_class_stats.json"):
        _rcs(gta_root)


def test_classes_without_candidates_are_dropped(gta_root: Path):
    """Files outside the dataset are skipped; a class left without frames is never drawn."""
    counts = {1: {0: 5000}, 99: {13: 9000}}  # frame 99 is not in the dataset
    _write_stats(gta_root, counts, min_pixels=MIN_PIXELS)
    ds = _rcs(gta_root)
    assert ds.class_probs == {0: 1.0}
    assert ds.dropped_classes == [13]
    assert "road=1.000" in ds.describe() and "[13]" in ds.describe()


def test_statistics_may_name_the_original_label(gta_root: Path):
    stats = [{"file": "labels/00003.png", "18": 2560, "0": 9728}]
    (gta_root / "sample_class_stats.json").write_text(json.dumps(stats))
    with_class = {"18": [["labels/00003.png", 2560]], "0": [["labels/00003.png", 9728]]}
    (gta_root / "samples_with_class.json").write_text(json.dumps(with_class))
    assert _rcs(gta_root).candidates == {0: [2], 18: [2]}


def test_seeding_reproduces_and_loader_runs_without_workers(gta_root: Path):
    a, b = _rcs(gta_root, temperature=1.0), _rcs(gta_root, temperature=1.0)
    first = [a.draw() for _ in range(50)]
    assert first == [b.draw() for _ in range(50)]
    # `loaders._seed_worker` calls dataset.transform.set_seed: it must re-seed the draws too.
    a.transform.set_seed(7)
    b.transform.set_seed(7)
    again = [a.draw() for _ in range(50)]
    assert again == [b.draw() for _ in range(50)]
    batch = next(train_loader(a, batch_size=2, num_workers=0, seed=0))
    assert batch["image"].shape == (2, 3, 64, 64)
    assert batch["label"].shape == (2, 64, 64) and batch["rcs_class"].shape == (2,)
    assert len(a) == len(FRAMES)


def test_build_domain_wraps_the_source_when_enabled(gta_root: Path):
    cfg = OmegaConf.structured(DomainConfig(kind="gta", root=str(gta_root), crop_hw=[64, 64]))
    off = build_domain(cfg, seed=0, with_val=False, rcs=OmegaConf.structured(RCSConfig()))
    assert isinstance(off.train, SegmentationDataset)
    rcs_cfg = OmegaConf.structured(RCSConfig(enabled=True, min_pixels=MIN_PIXELS))
    on = build_domain(cfg, seed=0, with_val=False, rcs=rcs_cfg)
    assert isinstance(on.train, RareClassDataset)
    assert on.train.class_probs[BICYCLE] > 0.999
    assert on.train[0]["rcs_class"] == BICYCLE


def test_worker_seeding_is_reproducible(gta_root: Path):
    """With workers, `_seed_worker` re-seeds the wrapper's draws through `transform.set_seed`."""

    def classes(seed: int) -> list[list[int]]:
        it = train_loader(_rcs(gta_root, temperature=1.0), batch_size=2, num_workers=2, seed=seed)
        return [next(it)["rcs_class"].tolist() for _ in range(8)]

    assert classes(0) == classes(0)
