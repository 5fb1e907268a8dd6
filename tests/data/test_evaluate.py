"""`python -m duda.evaluate`: a checkpoint on a labelled split, and submission PNGs for test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from layouts import bands, make_acdc
from PIL import Image

from duda.engine.checkpoint import save_checkpoint
from duda.evaluate import main

CONDITIONS = ("fog", "night", "rain", "snow")
# train ID -> Cityscapes label ID, written out by hand from the reference sheet §11
TRAIN_TO_LABEL_BY_HAND = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tests run `--threads 1` (on a shared CPU, several torch threads are many times
    slower for these tiny images); give the rest of the session its thread count back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """(ACDC-layout root, model_final.pt of a random MiT-B0 trained 'on' it)."""
    from duda.models import build_segmentor

    tmp = tmp_path_factory.mktemp("eval")
    root = tmp / "acdc"
    labels = {(c, s): [bands([0, 13, 255, 2, 10, 8])] for c in CONDITIONS for s in ("train", "val")}
    make_acdc(root, labels, test=1)
    backbone = {"name": "mit_b0", "pretrained": None, "drop_path_rate": 0.0}
    head = {"name": "segformer", "embed_dim": 32, "dropout": 0.0}
    torch.manual_seed(0)
    model = build_segmentor(backbone, head, 19)
    config = {
        "model": {"backbone": backbone, "head": head},
        "dataset": {
            "name": "cs_acdc",
            "num_classes": 19,
            "metrics": ["mIoU19"],
            "on_bad_sample": "skip",
            "target": {
                "kind": "acdc",
                "root": str(root),
                "val_split": "val",
                "resize_hw": [128, 128],
                "crop_hw": [128, 128],
                "conditions": ["all"],
            },
        },
        "trainer": {"eval_mode": "whole", "eval_crop_hw": None, "eval_stride_hw": None},
    }
    ckpt = save_checkpoint({"model": model.state_dict(), "config": config}, tmp / "model_final.pt")
    return root, ckpt


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_val_metrics_agree_with_the_written_predictions(run, tmp_path, capsys):
    """The reported IoUs, recomputed independently from the prediction PNGs and the labels."""
    root, ckpt = run
    out = tmp_path / "pred"
    args = [str(ckpt), "--device", "cpu", "--workers", "0", "--json", str(tmp_path / "r.json")]
    args += ["--threads", "1"]
    assert main([*args, "--write-predictions", str(out)]) == 0
    assert "mIoU19" in capsys.readouterr().out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["split"] == "val" and result["images"] == 4 and result["skipped"] == 0
    assert result["mIoU"] == result["mIoU19"]

    inter, union = np.zeros(19), np.zeros(19)
    for label_path in sorted(root.glob("gt/*/val/*/*_gt_labelTrainIds.png")):
        name = label_path.name.replace("_gt_labelTrainIds.png", "_rgb_anon.png")
        pred, gt = _read(out / name), _read(label_path)
        valid = gt != 255
        for c in range(19):
            p, g = (pred == c) & valid, (gt == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    present = union > 0
    assert result["mIoU19"] == pytest.approx(100 * np.mean(inter[present] / union[present]))


def test_test_split_writes_submission_pngs(run, tmp_path):
    root, ckpt = run
    base = [str(ckpt), "--split", "test", "--device", "cpu", "--threads", "1"]
    assert main([*base, "--write-predictions", str(tmp_path / "t")]) == 0
    assert main([*base, "--write-predictions", str(tmp_path / "l"), "--id-format", "labelid"]) == 0
    images = sorted(root.glob("rgb_anon/*/test/*/*_rgb_anon.png"))
    assert len(images) == 4
    lut = np.array(TRAIN_TO_LABEL_BY_HAND)
    for image in images:
        train_ids = _read(tmp_path / "t" / image.name)
        assert train_ids.shape == _read(image).shape[:2]
        assert train_ids.max() <= 18
        assert np.array_equal(_read(tmp_path / "l" / image.name), lut[train_ids])


def test_unlabelled_split_needs_an_output_folder(run, capsys):
    _, ckpt = run
    assert main([str(ckpt), "--split", "test", "--device", "cpu", "--threads", "1"]) == 2
    assert "has no public labels; pass --write-predictions DIR" in capsys.readouterr().err


def test_not_a_final_checkpoint(tmp_path, capsys):
    path = save_checkpoint({"iteration": 3, "method": {}}, tmp_path / "iter_3.pt")
    assert main([str(path)]) == 2
    assert "expected the keys 'model' and 'config'" in capsys.readouterr().err
