"""The benchmark-pair configs: reference sizes and metrics, data built from tiny shipped layouts,
and a helpful stop when the data is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from layouts import bands, make_acdc, make_cityscapes, make_darkzurich, make_gta, make_synthia
from omegaconf import OmegaConf

from duda.config import register_configs
from duda.data.build import build_domain, skipped_samples
from duda.data.datasets import DatasetLayoutError

CONF = Path(__file__).resolve().parents[2] / "conf"
SIZES = ("resize_hw", "crop_hw")
register_configs()

# (source kind, source resize, target kind, target resize, crop, metrics): reference sheet §11
PAIRS = {
    "gta_cs": ("gta", [720, 1280], "cityscapes", [512, 1024], 512, ["mIoU19"]),
    "gta_cs_hr": ("gta", [1440, 2560], "cityscapes", [1024, 2048], 1024, ["mIoU19"]),
    "syn_cs": (
        "synthia",
        [760, 1280],
        "cityscapes",
        [512, 1024],
        512,
        ["mIoU16", "mIoU13", "mIoU19"],
    ),
    "syn_cs_hr": (
        "synthia",
        [1520, 2560],
        "cityscapes",
        [1024, 2048],
        1024,
        ["mIoU16", "mIoU13", "mIoU19"],
    ),
    "cs_acdc": ("cityscapes", [512, 1024], "acdc", [540, 960], 512, ["mIoU19"]),
    "cs_acdc_hr": ("cityscapes", [1024, 2048], "acdc", [1080, 1920], 1024, ["mIoU19"]),
    "cs_dz": ("cityscapes", [512, 1024], "darkzurich", [540, 960], 512, ["mIoU19"]),
    "cs_dz_hr": ("cityscapes", [1024, 2048], "darkzurich", [1080, 1920], 1024, ["mIoU19"]),
}


def _compose(name: str, data_dir: Path, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        args = [f"dataset={name}", f"paths.data_dir={data_dir}", *overrides]
        cfg = compose("train", overrides=args)
    return cfg


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_pair_config_follows_the_reference(name, tmp_path):
    src_kind, src_hw, tgt_kind, tgt_hw, crop, metrics = PAIRS[name]
    d = OmegaConf.to_container(_compose(name, tmp_path).dataset, resolve=True, enum_to_str=True)
    assert (d["source"]["kind"], d["source"]["resize_hw"]) == (src_kind, src_hw)
    assert (d["target"]["kind"], d["target"]["resize_hw"]) == (tgt_kind, tgt_hw)
    assert d["source"]["crop_hw"] == d["target"]["crop_hw"] == [crop, crop]
    assert d["metrics"] == metrics and d["on_bad_sample"] == "skip"
    # border margins belong to a Cityscapes target only (reference sheet §4)
    assert (d["target"].get("pseudo_margins") is not None) == (tgt_kind == "cityscapes")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Every dataset in its shipped layout under the default root names, 2 images each."""
    root = tmp_path_factory.mktemp("data")
    ids = [7, 26, 0, 33]
    make_gta(root / "gta", [bands(ids)] * 2)
    make_synthia(root / "synthia", [bands([3, 8, 0, 11], np.uint16)] * 2)
    make_cityscapes(root / "cityscapes", {"train": [bands(ids)] * 2, "val": [bands(ids)] * 2})
    acdc = {
        (c, s): [bands([0, 13])] for c in ("fog", "night", "rain", "snow") for s in ("train", "val")
    }
    make_acdc(root / "acdc", acdc)
    make_darkzurich(root / "dark_zurich", [bands([10, 2])] * 2, train=2)
    return root


@pytest.mark.parametrize("name", ["gta_cs", "syn_cs", "cs_acdc", "cs_dz"])
def test_pair_builds_from_shipped_layouts(name, data_dir):
    # tiny sizes: large OpenCV operations start its thread pool, which later deadlocks forked
    # workers that call cv2.setNumThreads (duda.data.synth's pool does)
    small = [f"dataset.{side}.{key}=[16,32]" for side in ("source", "target") for key in SIZES]
    cfg = _compose(name, data_dir, *small).dataset
    source = build_domain(cfg.source, 0, with_val=False, on_bad_sample=cfg.on_bad_sample)
    target = build_domain(
        cfg.target, 1, with_val=True, train_labels=False, on_bad_sample=cfg.on_bad_sample
    )
    item = source.train[0]
    assert item["image"].shape == (3, 16, 32)
    assert set(np.unique(item["label"].numpy())) <= {0, 13, 18, 255}
    assert target.train[0]["image"].shape == (3, 16, 32)
    assert target.val[0]["label"].shape == (8, 16 if PAIRS[name][2] == "cityscapes" else 8)
    assert skipped_samples(source, target) == 0


@pytest.mark.parametrize("name", ["gta_cs", "syn_cs", "cs_acdc", "cs_dz"])
def test_pair_without_data_says_what_to_download_and_prepare(name, tmp_path):
    cfg = _compose(name, tmp_path).dataset
    with pytest.raises(DatasetLayoutError) as err:
        build_domain(cfg.source, 0, with_val=False)
    kind = PAIRS[name][0]
    assert f"python -m duda.data.prepare {kind} --root {tmp_path}/" in str(err.value)
    assert "Download" in str(err.value) and "DUDA_DATA" in str(err.value)
