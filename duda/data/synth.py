"""Embedded synthetic domain-shift benchmark: a procedural stand-in for GTA5 -> Cityscapes.

No real dataset can be downloaded on the project machines, so this generator writes street
scenes in the *real* on-disk layouts -- `gta/{images,labels}` with palette PNGs of Cityscapes
label IDs, and `cityscapes/{leftImg8bit,gtFine}/{train,val}/<city>/` -- and every loader,
training run and benchmark of the project runs unchanged on real data later. Geometry lives in
`synth_scene`, appearance in `synth_style`; this module only plans, renders and writes files.

    python -m duda.data.synth --out data/synth --seed 0 --source-count 500 --target-count 500 \
        --size 256x128 --target-style day [--val-count 100] [--workers 4] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import numbers
import re
import shutil
import sys
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from duda.data.classes import PALETTE, TRAIN_TO_LABEL
from duda.data.synth_scene import (
    SOURCE_LAYOUT,
    TARGET_LAYOUT,
    build_scene,
    depth_map,
    label_map,
    material_map,
    part_ids,
)
from duda.data.synth_style import STYLES, render

FORMAT_VERSION = 1
META_NAME = "synth_meta.json"
TRAIN_CITIES = ("synthtown", "pixelburg", "voxelstadt")
VAL_CITIES = ("rendermont", "shaderville")
CITYSCAPES_FRAME = 19  # real Cityscapes annotates the 20th frame of each snippet
_DOMAIN_CODE = {"source": 0, "train": 1, "val": 2}
_MAX_SIDE = 8192

# Colours of the Cityscapes IDs that are not among the 19 train classes (cityscapesscripts).
_EXTRA_COLORS = {
    5: (111, 74, 0),
    6: (81, 0, 81),
    9: (250, 170, 160),
    10: (230, 150, 140),
    14: (180, 165, 180),
    15: (150, 100, 100),
    16: (150, 120, 90),
    18: (153, 153, 153),
    29: (0, 0, 90),
    30: (0, 0, 110),
}


class BenchmarkExistsError(FileExistsError):
    """The output folder already holds data this call must not replace."""


@dataclass(frozen=True)
class Job:
    """One image of the benchmark: which scene to draw and where its two files go."""

    domain: str  # "source", "train" or "val"
    index: int
    image: Path
    label: Path


def label_palette() -> list[int]:
    """The palette real GTA5 label PNGs carry: entry i is the colour of Cityscapes ID i."""
    colors = [(0, 0, 0)] * 256
    for train_id, label_id in TRAIN_TO_LABEL.items():
        colors[label_id] = PALETTE[train_id]
    for label_id, color in _EXTRA_COLORS.items():
        colors[label_id] = color
    return [c for rgb in colors for c in rgb]


def parse_size(text: str) -> tuple[int, int]:
    """'256x128' -> (256, 128); the message names the expected form, since that is the fix."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WxH like 256x128, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _validate(
    seed: int, counts: dict[str, int], size: tuple[int, int], target_style: str, workers: int
) -> None:
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, count in counts.items():
        if not _is_int(count) or count < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {count!r}")
    if counts["source_count"] > 99999:
        raise ValueError("source_count must be at most 99999 (GTA5 names have 5 digits)")
    if len(size) != 2 or not all(_is_int(s) for s in size):
        raise ValueError(f"size must be (width, height) integers, got {size!r}")
    if not (32 <= size[0] <= _MAX_SIDE and 16 <= size[1] <= _MAX_SIDE):
        raise ValueError(f"size {size[0]}x{size[1]} out of range: width >= 32, height >= 16")
    if target_style not in STYLES:
        raise ValueError(f"target_style must be one of {', '.join(STYLES)}, got {target_style!r}")
    if not _is_int(workers) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


# --------------------------------------------------------------------------- layout on disk


def _city_jobs(split: str, cities: tuple[str, ...], count: int) -> list[Job]:
    """Cityscapes names: consecutive sequence numbers per city, one annotated frame each."""
    jobs = []
    for i in range(count):
        city_idx = i * len(cities) // count
        first = -(-city_idx * count // len(cities))  # first index that falls in this city
        city, seq = cities[city_idx], i - first
        stem = f"{city}_{seq:06d}_{CITYSCAPES_FRAME:06d}"
        jobs.append(
            Job(
                split,
                i,
                Path("cityscapes", "leftImg8bit", split, city, f"{stem}_leftImg8bit.png"),
                Path("cityscapes", "gtFine", split, city, f"{stem}_gtFine_labelIds.png"),
            )
        )
    return jobs


def plan(source_count: int, target_count: int, val_count: int) -> list[Job]:
    """Every file pair to write, relative to the output folder, in a fixed order."""
    jobs = [
        Job(
            "source",
            i,
            Path("gta", "images", f"{i + 1:05d}.png"),
            Path("gta", "labels", f"{i + 1:05d}.png"),
        )
        for i in range(source_count)
    ]
    return (
        jobs
        + _city_jobs("train", TRAIN_CITIES, target_count)
        + _city_jobs("val", VAL_CITIES, val_count)
    )


# --------------------------------------------------------------------------- rendering


def render_sample(
    seed: int, domain: str, index: int, size: tuple[int, int], target_style: str = "day"
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, Cityscapes label IDs) of one benchmark image.

    The generator is seeded from (seed, domain, index) alone, so any worker can draw any image
    and the benchmark is the same for every worker count.
    """
    rng = np.random.default_rng([seed, _DOMAIN_CODE[domain], index])
    source = domain == "source"
    scene = build_scene(rng, size, SOURCE_LAYOUT if source else TARGET_LAYOUT)
    pid = part_ids(scene)
    style = "source" if source else target_style
    depth = depth_map(scene, pid) if style == "fog" else None
    image = render(scene, pid, material_map(scene, pid), depth, rng, style)
    return image, label_map(scene, pid)


def _write(out: Path, job: Job, image: np.ndarray, labels: np.ndarray) -> None:
    cv2.imwrite(str(out / job.image), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if job.domain == "source":
        png = Image.fromarray(labels)
        png.putpalette(label_palette())
        png.save(out / job.label)
    else:
        cv2.imwrite(str(out / job.label), labels)


def _work(task: tuple[Path, Job, int, tuple[int, int], str]) -> None:
    out, job, seed, size, style = task
    image, labels = render_sample(seed, job.domain, job.index, size, style)
    _write(out, job, image, labels)


# --------------------------------------------------------------------------- metadata


def _read_meta(out: Path) -> dict | None:
    try:
        return json.loads((out / META_NAME).read_text())
    except (OSError, ValueError):
        return None


def _write_meta(out: Path, args: dict, complete: bool) -> None:
    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "duda.data.synth",
        "args": args,
        "label_encoding": "cityscapes labelIds",
        "complete": complete,
    }
    (out / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")


def _prepare(out: Path, args: dict, jobs: list[Job], overwrite: bool) -> bool:
    """Decide whether to generate; True means go ahead. Never replaces foreign data."""
    meta = _read_meta(out)
    ours = [out / "gta", out / "cityscapes", out / META_NAME]
    if meta is None:
        if any(p.exists() for p in ours[:2]):
            raise BenchmarkExistsError(
                f"{out} already holds gta/ or cityscapes/ data not written by this generator "
                f"(no {META_NAME}); refusing to touch it, choose another --out"
            )
        return True
    same = meta.get("format_version") == FORMAT_VERSION and meta.get("args") == args
    if (
        same
        and meta.get("complete")
        and all((out / j.image).exists() and (out / j.label).exists() for j in jobs)
    ):
        print(
            f"synth: {out} already holds this benchmark (identical arguments), skipping",
            file=sys.stderr,
        )
        return False
    if not same and not overwrite:
        raise BenchmarkExistsError(
            f"{out} holds a different synthetic benchmark ({meta.get('args')}); "
            f"pass --overwrite to replace it or choose another --out"
        )
    for path in ours:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return True


def _make_folders(out: Path, jobs: list[Job]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for folder in sorted({(out / p).parent for j in jobs for p in (j.image, j.label)}):
        folder.mkdir(parents=True, exist_ok=True)


def _run(tasks: list[tuple], workers: int) -> None:
    """Render and write every task; each task seeds itself, so order and pool size are free."""
    with tqdm(total=len(tasks), desc="synth", unit="img", file=sys.stderr) as bar:
        if workers == 1:
            for task in tasks:
                _work(task)
                bar.update()
            return
        # No cv2.setNumThreads(1) initializer: in a worker forked from a process whose OpenCV
        # thread pool has already run, that call can deadlock.
        with get_context().Pool(workers) as pool:
            for _ in pool.imap_unordered(_work, tasks, chunksize=8):
                bar.update()


def generate(
    out: Path,
    seed: int = 0,
    source_count: int = 500,
    target_count: int = 500,
    val_count: int = 100,
    size: tuple[int, int] = (256, 128),
    target_style: str = "day",
    workers: int = 1,
    overwrite: bool = False,
) -> None:
    """Write the benchmark to `out` (size is (W, H)); a no-op if it is already there.

    The metadata is written first with `complete: false` and finalised last, so an interrupted
    run is regenerated instead of being mistaken for a finished benchmark.
    """
    counts = {"source_count": source_count, "target_count": target_count, "val_count": val_count}
    _validate(seed, counts, tuple(size), target_style, workers)
    out, seed, size = Path(out), int(seed), (int(size[0]), int(size[1]))
    counts = {name: int(count) for name, count in counts.items()}
    args = {"seed": seed, **counts, "size": list(size), "target_style": target_style}
    jobs = plan(*counts.values())
    if not _prepare(out, args, jobs, overwrite):
        return
    _make_folders(out, jobs)
    _write_meta(out, args, complete=False)
    _run([(out, job, seed, size, target_style) for job in jobs], workers)
    _write_meta(out, args, complete=True)


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duda.data.synth",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="same seed, byte-identical files")
    p.add_argument("--source-count", type=int, default=500, help="GTA-style source images")
    p.add_argument("--target-count", type=int, default=500, help="Cityscapes-style train images")
    p.add_argument("--val-count", type=int, default=100, help="Cityscapes-style val images")
    p.add_argument("--size", type=parse_size, default=(256, 128), help="WxH, e.g. 256x128")
    p.add_argument("--target-style", choices=STYLES, default="day")
    p.add_argument("--workers", type=int, default=1, help="processes; output is identical")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a benchmark generated with different arguments",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    try:
        generate(
            a.out,
            a.seed,
            a.source_count,
            a.target_count,
            a.val_count,
            a.size,
            a.target_style,
            a.workers,
            a.overwrite,
        )
    except ValueError as err:
        parser.error(str(err))
    except BenchmarkExistsError as err:
        print(f"synth: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
