"""`python -m duda.predict`: colour PNGs at each image's size, in the palette, of the argmax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_student import reference_logits

from duda import predict
from duda.deploy import formats
from duda.deploy.student import load_student

# Cityscapes colours by train ID, from the dataset's documentation (not from duda's table)
PALETTE = np.array(
    [
        [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
        [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
        [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
        [0, 80, 100], [0, 0, 230], [119, 11, 32],
    ],
    np.uint8,
)  # fmt: skip
SIZES = {"wide.png": (48, 80), "tall.png": (72, 40), "photo.jpg": (40, 56)}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, (h, w) in SIZES.items():
        # smooth images, so that the tiny network's predictions are not pure noise
        base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        Image.fromarray(base).resize((w, h), Image.BILINEAR).save(folder / name)
    (folder / "notes.txt").write_text("not an image: not listed")
    return folder


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _assert_argmax(ids: np.ndarray, logits: np.ndarray) -> None:
    """Every predicted ID is the argmax of `logits` (C x H x W), up to float ties."""
    best = logits.max(0)
    chosen = np.take_along_axis(logits, ids[None].astype(np.int64), 0)[0]
    assert (best - chosen).max() < 1e-4
    assert (ids == logits.argmax(0)).mean() > 0.999


def test_colour_and_train_id_pngs_at_each_image_size(checkpoint, images, tmp_path, capsys):
    out = tmp_path / "pred"
    args = [f"checkpoint={checkpoint}", f"input={images}", f"output={out}", "trainid=true"]
    assert predict.main(args) == 0
    assert "wrote 3 predictions" in capsys.readouterr().out
    expected_files = {f"{Path(n).stem}_{kind}.png" for n in SIZES for kind in ("color", "trainid")}
    assert {p.name for p in out.iterdir()} == expected_files
    for name, hw in SIZES.items():
        color = _read(out / f"{Path(name).stem}_color.png")
        ids = _read(out / f"{Path(name).stem}_trainid.png")
        assert color.shape == (*hw, 3) and ids.shape == hw
        assert ids.max() < 19
        np.testing.assert_array_equal(color, PALETTE[ids])
        if name.endswith(".png"):  # lossless: the test can feed the same pixels to the network
            _assert_argmax(ids, reference_logits(checkpoint, _read(images / name)[None])[0])


def test_resized_and_sliding_predictions_come_back_at_file_size(checkpoint, images, tmp_path):
    out = tmp_path / "pred"
    args = [f"checkpoint={checkpoint}", f"input={images / 'wide.png'}", f"output={out}"]
    assert predict.main([*args, "size=40x64", "mode=slide", "window=32x32"]) == 0
    color = _read(out / "wide_color.png")
    assert color.shape == (48, 80, 3)
    palette = {tuple(c) for c in PALETTE}
    assert {tuple(c) for c in color.reshape(-1, 3)} <= palette


def test_exported_onnx_student_predicts_what_the_checkpoint_does(checkpoint, images, tmp_path):
    student, _ = load_student(checkpoint)
    onnx_file = formats.export_onnx(
        student, torch.zeros(1, 3, 64, 64), tmp_path / "s.onnx", exporter="legacy"
    )
    for source, name in ((checkpoint, "ckpt"), (onnx_file, "onnx")):
        args = [f"checkpoint={source}", f"input={images}", f"output={tmp_path / name}"]
        assert predict.main([*args, "trainid=true"]) == 0
    for stem in ("wide", "tall"):
        ids = _read(tmp_path / "onnx" / f"{stem}_trainid.png")
        _assert_argmax(ids, reference_logits(checkpoint, _read(images / f"{stem}.png")[None])[0])


def test_unreadable_images_are_skipped_and_named(checkpoint, images, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ok.png").write_bytes((images / "wide.png").read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG truncated")
    args = [f"checkpoint={checkpoint}", f"input={folder}", f"output={tmp_path / 'out'}"]
    assert predict.main(args) == 0
    captured = capsys.readouterr()
    assert "wrote 1 predictions" in captured.out and "broken.png" in captured.err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok_color.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["input={images}", "output={out}"], "missing checkpoint=PATH"),
        (["checkpoint={ckpt}", "input={empty}", "output={out}"], "holds no image"),
        (["checkpoint={ckpt}", "input={tmp}/nope", "output={out}"], "does not exist"),
        (["checkpoint={tmp}/no.pt", "input={images}", "output={out}"], "does not exist"),
        (["checkpoint={ckpt}", "input={images}", "output={images}"], "another folder than input"),
        (["checkpoint={ckpt}", "input={images}", "output={out}", "mode=tiles"], "expected one of"),
        (["checkpoint={ckpt}", "input={images}", "output={out}", "device=gpu"], "cuda:N"),
        (["checkpoint={ckpt}", "input={clash}", "output={out}"], "several images are named a.*"),
        (["checkpoint={fake_onnx}", "input={images}", "output={out}"], "not a readable ONNX file"),
    ],
)
def test_bad_input_exits_2_naming_what_was_expected(
    checkpoint, images, tmp_path, capsys, args, message
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "clash").mkdir()
    for name in ("a.png", "a.jpg"):
        (tmp_path / "clash" / name).write_bytes(b"")
    (tmp_path / "fake.onnx").write_text("not a graph")
    paths = dict(ckpt=checkpoint, images=images, out=tmp_path / "out", tmp=tmp_path)
    paths |= {name: tmp_path / name for name in ("empty", "clash")}
    paths["fake_onnx"] = tmp_path / "fake.onnx"
    assert predict.main([a.format(**paths) for a in args]) == 2
    assert message in capsys.readouterr().err
