"""Segment every image of a folder with a trained student; write colour-coded PNGs.

    python -m duda.predict checkpoint=outputs/runs/<run>/model_final.pt input=DIR output=DIR
        [size=HxW|none] [mode=whole|slide] [window=HxW] [trainid=true] [device=auto] [threads=N]

For each image `<name>.<ext>` of `input` (a folder, not searched recursively, or one file), writes
`<output>/<name>_color.png` (Cityscapes palette, at the image's own resolution) and with
`trainid=true` also `<name>_trainid.png` (train IDs 0-18, what `duda.evaluate` and benchmark
servers read). The image is resized as the run evaluated it (`dataset.target.resize_hw`, keep
ratio; `size=` overrides, `size=none` keeps the file's size), predicted whole or by sliding
windows (`trainer.eval_mode`), and the logits are resized back to the file's size.
`checkpoint` may also be an exported `student.onnx` (`python -m duda.export`), run by ONNX
Runtime on the CPU; it has no run config, so the defaults are then `size=none mode=whole`.
Unreadable images are named on stderr and skipped; the exit code is 2 for bad arguments or
input (no image, missing checkpoint), 0 otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from tqdm import tqdm

from duda.config import plain
from duda.data.datasets import BadSampleError, read_image
from duda.data.preview import colorize
from duda.data.transforms import SegTransform, build_eval_transform, denormalize
from duda.deploy import args as A
from duda.deploy import formats
from duda.deploy.args import RUN
from duda.deploy.student import DeployableStudent, load_student
from duda.engine.device import resolve_device
from duda.engine.inference import predict_slide, predict_whole

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

OPTIONS = (
    A.Option("checkpoint", A.path, required=True, metavar="PATH", help="model_final.pt or .onnx"),
    A.Option("input", A.path, required=True, metavar="DIR", help="folder of images, or one file"),
    A.Option("output", A.path, required=True, metavar="DIR", help="where the PNGs go"),
    A.Option("size", A.or_run(A.optional(A.size_hw)), RUN, "HxW", "fit inside, keep ratio"),
    A.Option("mode", A.choice(RUN, "whole", "slide"), RUN, "MODE", "whole image or windows"),
    A.Option("window", A.or_run(A.size_hw), RUN, "HxW", "sliding window, stride half of it"),
    A.Option("trainid", A.boolean, False, "BOOL", "also write <name>_trainid.png"),
    A.Option("device", A.device, "auto", "DEV", "auto, cpu, cuda or cuda:N (checkpoints)"),
    A.Option("threads", A.optional(A.positive_int), None, "N", "CPU threads"),
)


@dataclass
class Plan:
    """How to turn an image file into logits: resolved from the options and the run config."""

    predict: Callable[[torch.Tensor], torch.Tensor]  # normalised NCHW -> logits at input size
    device: torch.device
    num_classes: int
    transform: SegTransform  # the evaluation's resize and normalisation
    mode: str
    window_hw: Sequence[int]


def list_images(source: Path) -> list[Path]:
    """The images of a folder (sorted) or the one file given; fails naming what it expected."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"input {source} does not exist; expected a folder of images")
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(
            f"input {source} holds no image; expected files ending in {', '.join(IMAGE_SUFFIXES)}"
        )
    stems = [p.stem for p in images]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ValueError(f"several images are named {clashes[0]}.*; their outputs would collide")
    return images


def plan(
    options: dict[str, Any], loaded: tuple[DeployableStudent, DictConfig] | None = None
) -> Plan:
    """`loaded`: the checkpoint's `load_student` result, when the caller has it already."""
    checkpoint: Path = options["checkpoint"]
    if checkpoint.suffix == ".onnx":
        return _onnx_plan(options)
    device = resolve_device(options["device"], "device")
    student, cfg = loaded or load_student(checkpoint)
    segmentor = student.segmentor.to(device)
    target, trainer = cfg.dataset.target, cfg.trainer
    run_window = trainer.eval_crop_hw or target.crop_hw
    return Plan(
        predict=segmentor.predict,
        device=device,
        num_classes=int(cfg.dataset.num_classes),
        transform=build_eval_transform(
            target.resize_hw if options["size"] == RUN else options["size"]
        ),
        mode=plain(trainer.eval_mode) if options["mode"] == RUN else options["mode"],
        window_hw=list(run_window) if options["window"] == RUN else options["window"],
    )


def _onnx_plan(options: dict[str, Any]) -> Plan:
    path: Path = options["checkpoint"]
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if options["mode"] == "slide" and options["window"] == RUN:
        raise A.UsageError("an ONNX file has no run config: slide mode needs window=HxW")
    try:
        run = formats.load_onnx(path, options.get("threads"))
    except Exception as err:  # onnxruntime's own exception types, e.g. InvalidProtobuf
        raise ValueError(f"{path} is not a readable ONNX file ({err})") from err

    def predict(images: torch.Tensor) -> torch.Tensor:
        # the exported graph normalises itself; give it the pixels back
        return torch.from_numpy(run(denormalize(images).numpy().astype(np.float32)))

    probe = predict(torch.zeros(1, 3, 32, 32))
    return Plan(
        predict=predict,
        device=torch.device("cpu"),
        num_classes=probe.shape[1],
        transform=build_eval_transform(None if options["size"] == RUN else options["size"]),
        mode="whole" if options["mode"] == RUN else options["mode"],
        window_hw=options["window"] if options["window"] != RUN else (512, 512),
    )


@torch.inference_mode()
def predict_file(p: Plan, path: Path) -> np.ndarray:
    """Train IDs (uint8 H x W) of one image file, at the file's resolution."""
    image = read_image(path)
    tensor = p.transform(image, None)["image"].unsqueeze(0).to(p.device)
    out_hw = image.shape[:2]
    if p.mode == "slide":
        stride = [max(1, s // 2) for s in p.window_hw]
        logits = predict_slide(p.predict, tensor, p.num_classes, p.window_hw, stride, out_hw)
    else:
        logits = predict_whole(p.predict, tensor, out_hw)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def run(options: dict[str, Any]) -> tuple[int, int]:
    """(images written, images skipped as unreadable)."""
    if options["threads"]:
        torch.set_num_threads(options["threads"])
    images = list_images(options["input"])
    out: Path = options["output"]
    if out.resolve() == options["input"].resolve():
        raise A.UsageError("output must be another folder than input")
    p = plan(options)
    if p.num_classes > 19:
        raise ValueError(f"the network predicts {p.num_classes} classes; the palette has 19")
    out.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    for path in tqdm(images, desc="predict", unit="img", disable=len(images) < 2):
        try:
            pred = predict_file(p, path)
        except BadSampleError as err:
            tqdm.write(f"predict: skipping {err}", file=sys.stderr)
            skipped += 1
            continue
        Image.fromarray(colorize(pred)).save(out / f"{path.stem}_color.png")
        if options["trainid"]:
            Image.fromarray(pred).save(out / f"{path.stem}_trainid.png")
        written += 1
    return written, skipped


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(A.usage("duda.predict", __doc__, OPTIONS))
        return 0
    try:
        options = A.parse_args(argv, OPTIONS)
        written, skipped = run(options)
    except (A.UsageError, FileNotFoundError, ValueError) as err:
        print(f"predict: error: {err}", file=sys.stderr)
        return A.EXIT_USAGE
    print(f"wrote {written} predictions to {options['output']}")
    if skipped:
        print(f"skipped {skipped} unreadable images (named above)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
