"""`python -m duda.data.preview --root data/synth_day --out docs/synth_samples.png`.

A picture of a source->target pair, rows of (source image, source label, target image, target
label) with labels in the Cityscapes palette, so a benchmark can be checked by eye.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from duda.data.classes import IGNORE_INDEX, PALETTE
from duda.data.datasets import find_cityscapes, find_gta, read_image, read_train_ids


def colorize(train_ids: np.ndarray) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)  # ignore (255) and unknown IDs stay black
    lut[: len(PALETTE)] = PALETTE
    lut[IGNORE_INDEX] = 0
    return lut[train_ids]


def preview(root: Path, count: int = 3, split: str = "val") -> np.ndarray:
    rows = []
    sources = find_gta(root / "gta")[:count]
    targets = find_cityscapes(root / "cityscapes", split)[:count]
    for src, tgt in zip(sources, targets, strict=False):
        tiles = [read_image(src.image), colorize(read_train_ids(src.label))]
        tiles += [read_image(tgt.image), colorize(read_train_ids(tgt.label))]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, required=True, help="folder holding gta/ and cityscapes/"
    )
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(preview(args.root, args.count)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
