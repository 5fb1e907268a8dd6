"""Evaluate a trained checkpoint, or write the prediction PNGs a benchmark server wants.

    python -m duda.evaluate outputs/runs/<run>/model_final.pt                  # val: IoU table
    python -m duda.evaluate CKPT --split test --write-predictions preds/       # ACDC/DZ test
        [--id-format trainid|labelid] [--root DIR] [--mode whole|slide] [--json OUT]

The checkpoint (`model_final.pt`, written by the trainer) holds the network's weights and the
resolved run config, so the dataset, its resize, the inference mode and the reported class
subsets (`dataset.metrics`) are the run's own. ACDC and Dark Zurich keep their test labels
private: `--split test` predicts each image at its file resolution and writes
`<DIR>/<image file stem>.png` (the mmseg naming the reference's submissions use) in train IDs
(0-18, what the DAFormer/MIC READMEs submit) or Cityscapes label IDs (`--id-format labelid`);
zip the folder and upload it to the dataset's server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home at import

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from duda.config import plain  # noqa: E402
from duda.data.classes import CLASS_NAMES, TRAIN_TO_LABEL  # noqa: E402
from duda.data.datasets import (  # noqa: E402
    UNLABELLED_SPLITS,
    BadSampleError,
    DatasetLayoutError,
    SegmentationDataset,
    build_dataset,
)
from duda.data.loaders import eval_loader  # noqa: E402
from duda.data.transforms import build_eval_transform  # noqa: E402
from duda.engine.checkpoint import load_checkpoint  # noqa: E402
from duda.engine.device import resolve_device  # noqa: E402
from duda.engine.evaluation import EvalSettings, evaluate  # noqa: E402
from duda.engine.inference import predict_slide, predict_whole  # noqa: E402
from duda.engine.metrics import format_table  # noqa: E402


def load_model(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, DictConfig]:
    """The segmentor of a `model_final.pt` with its weights, and the run config it was trained
    with. The backbone's `pretrained` file is not needed (the checkpoint has every weight)."""
    from duda.models import build_segmentor

    ckpt = load_checkpoint(path)
    if "model" not in ckpt or "config" not in ckpt:
        raise ValueError(
            f"{path} is not a final model checkpoint: expected the keys 'model' and 'config' "
            f"(model_final.pt of a run), found {sorted(ckpt)}"
        )
    cfg = OmegaConf.create(ckpt["config"])
    backbone = OmegaConf.to_container(cfg.model.backbone, resolve=True)
    backbone["pretrained"] = None
    model = build_segmentor(backbone, cfg.model.head, int(cfg.dataset.num_classes))
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


def label_id_lut() -> np.ndarray:
    """Train ID -> Cityscapes label ID (what `--id-format labelid` writes); 255 -> 0."""
    lut = np.zeros(256, np.uint8)
    for train_id, label_id in TRAIN_TO_LABEL.items():
        lut[train_id] = label_id
    return lut


@torch.inference_mode()
def write_predictions(
    model: torch.nn.Module,
    dataset: SegmentationDataset,
    out_dir: str | Path,
    settings: EvalSettings,
    device: torch.device,
    id_format: str = "trainid",
    num_classes: int = 19,
) -> int:
    """Predict every image of `dataset` at its file resolution; returns the number written."""
    if id_format not in ("trainid", "labelid"):
        raise ValueError(f"id_format must be trainid or labelid, got {id_format!r}")
    out_dir = Path(out_dir)
    names = [s.image.stem for s in dataset.samples]
    if len(set(names)) != len(names):
        raise ValueError("image file names repeat across folders; cannot write a flat folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    lut = label_id_lut() if id_format == "labelid" else None
    stride = settings.stride_hw or [max(1, s // 2) for s in settings.window_hw]
    written = 0
    limit = settings.max_images if settings.max_images is not None else len(dataset)
    for i in tqdm(range(min(limit, len(dataset))), desc="predict", disable=not settings.progress):
        item = dataset[i]
        if item.get("bad"):
            continue  # warned and counted by the dataset
        image = item["image"].unsqueeze(0).to(device)
        out_hw = [int(v) for v in item["image_hw"]]
        if settings.mode == "slide":
            logits = predict_slide(
                model.predict, image, num_classes, settings.window_hw, stride, out_hw
            )
        else:
            logits = predict_whole(model.predict, image, out_hw)
        pred = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
        if lut is not None:
            pred = lut[pred]
        name = dataset.samples[item["index"]].image.stem
        Image.fromarray(pred).save(out_dir / f"{name}.png")
        written += 1
    return written


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duda.evaluate",
        description="Evaluate a checkpoint on a labelled split (per-class IoU table), or write "
        "prediction PNGs for a split without public labels (ACDC/Dark Zurich test).",
    )
    p.add_argument("checkpoint", type=Path, help="model_final.pt of a run")
    p.add_argument("--split", default=None, help="default: the run's target val split")
    p.add_argument("--root", default=None, help="target dataset root (default: the run's)")
    p.add_argument("--write-predictions", type=Path, default=None, metavar="DIR")
    p.add_argument("--id-format", choices=("trainid", "labelid"), default="trainid")
    p.add_argument("--mode", choices=("whole", "slide"), default=None, help="default: the run's")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--workers", type=int, default=2, help="data loader processes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        device = resolve_device(a.device, "--device")
        model, cfg = load_model(a.checkpoint, device)
        target = cfg.dataset.target
        split = a.split or target.val_split
        labelled = split not in UNLABELLED_SPLITS
        if not labelled and a.write_predictions is None:
            raise ValueError(
                f"split '{split}' has no public labels; pass --write-predictions DIR to write "
                "the PNGs for the benchmark server"
            )
        dataset = build_dataset(
            plain(target.kind),
            a.root or target.root,
            split,
            build_eval_transform(target.resize_hw),
            load_labels=labelled,
            conditions=list(target.get("conditions") or ["all"]),
            on_bad_sample=plain(cfg.dataset.get("on_bad_sample", "skip")),
            substitute=False,
        )
        t = cfg.trainer
        settings = EvalSettings(
            mode=a.mode or plain(t.eval_mode),
            window_hw=list(t.eval_crop_hw or target.crop_hw),
            stride_hw=t.eval_stride_hw,
            max_images=a.max_images,
            metrics=[plain(m) for m in cfg.dataset.get("metrics") or ["mIoU19"]],
        )
        results: dict[str, Any] = {"checkpoint": str(a.checkpoint), "split": split}
        if labelled:
            loader = eval_loader(dataset, 1, a.workers)
            results.update(evaluate(model, loader, CLASS_NAMES, device, settings))
            print(format_table(results, title=f"{cfg.dataset.name}: {split} ({target.root})"))
        if a.write_predictions is not None:
            n = write_predictions(
                model, dataset, a.write_predictions, settings, device, a.id_format
            )
            results["predictions"] = {"dir": str(a.write_predictions), "images": n}
            print(f"wrote {n} predictions ({a.id_format}) to {a.write_predictions}")
        if dataset.skipped_count:
            print(f"skipped {dataset.skipped_count} bad files (see the warnings above)")
        if a.json is not None:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(results, indent=2) + "\n")
    except (DatasetLayoutError, BadSampleError, ValueError, FileNotFoundError) as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
