"""Prepare a dataset once after download: train-ID labels and rare-class statistics, one pass.

    python -m duda.data.prepare {gta,synthia,cityscapes,acdc,darkzurich} --root DIR \
        [--workers N] [--min-pixels 3000] [--on-bad-sample skip|error] [--force]

Every label is read once: its IDs are checked (values that are not IDs of the dataset's encoding
make the file bad), its size is compared with its image's, it is mapped to the 19 Cityscapes
train IDs and written beside the original with the usual name, and its pixels are counted per
class. GTA5 label IDs and Cityscapes `labelIds` use the official `cityscapesscripts` table;
SYNTHIA's class sits in the last channel of a 16-bit PNG read with OpenCV (reference sheet §11).
ACDC and Dark Zurich ship `*_gt_labelTrainIds.png`: nothing to convert, only statistics.

Statistics (reference sheet §6), written into `--root` for rare-class sampling (`data/rcs.py`):

- `sample_class_stats.json`: ``[{"file": "<train-ID label, relative to root>", "<train id>":
  <pixels>, ...}, ...]``, one object per labelled training file, only the classes present;
- `samples_with_class.json`: ``{"<train id>": [["<file>", <pixels>], ...]}`` for every train ID
  0-18, the files with more than `--min-pixels` pixels of it.

They cover the split a source is trained on (GTA5 and SYNTHIA: all; Cityscapes, ACDC: train;
Dark Zurich: val, its only labelled split). Cityscapes val labels are converted too.

Safe to repeat and to interrupt: each file is written under a temporary name and renamed over
the final one, so a kill never leaves a half-written label; a rerun removes stray temporary
files, skips labels whose converted file is newer than the original, takes their counts from the
previous statistics (or recounts the converted file) and ends with byte-identical output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from duda.data.classes import cityscapes_label_table
from duda.data.datasets import (
    BadSampleError,
    BadSamplePolicy,
    DatasetLayoutError,
    Sample,
    converted_label_path,
    find_acdc,
    find_cityscapes,
    find_darkzurich,
    find_gta,
    find_synthia,
    image_size,
    read_label_ids,
    read_synthia_ids,
    to_train_ids,
)

DATASETS = ("gta", "synthia", "cityscapes", "acdc", "darkzurich")
STATS_FILE = "sample_class_stats.json"
SAMPLES_FILE = "samples_with_class.json"
TMP_SUFFIX = ".prepare-tmp"
NUM_CLASSES = 19


@dataclass(frozen=True)
class Job:
    """One label: read `source` (as shipped, or the converted file when only counting), write
    `output` when converting, and count it in the statistics when `stats`."""

    label: Path
    image: Path
    output: Path
    encoding: str
    stats: bool
    convert: bool  # False: `output` is up to date (or the label ships train IDs): only count


@dataclass
class Report:
    """What one `prepare` call did, for the summary line and for tests."""

    dataset: str
    root: Path
    labels: int = 0
    converted: int = 0
    counted: int = 0
    cached: int = 0
    skipped: list[str] | None = None
    table_source: str | None = None

    def summary(self) -> str:
        skipped = self.skipped or []
        line = (
            f"prepare {self.dataset}: {self.labels} labels under {self.root} "
            f"({self.converted} converted, {self.counted} counted, {self.cached} already done), "
            f"{len(skipped)} skipped"
        )
        if skipped:
            shown = "\n  ".join(skipped[:20]) + ("\n  ..." if len(skipped) > 20 else "")
            line += f":\n  {shown}"
        return line


# --------------------------------------------------------------------------- which files


def _samples(dataset: str, root: Path, policy: BadSamplePolicy) -> list[tuple[Sample, bool]]:
    """(sample, counted in the statistics) for every label `prepare` handles."""
    if dataset == "gta":
        return [(s, True) for s in find_gta(root, policy=policy)]
    if dataset == "synthia":
        return [(s, True) for s in find_synthia(root, policy=policy)]
    if dataset == "cityscapes":
        out = [(s, True) for s in find_cityscapes(root, "train", policy=policy)]
        if (root / "leftImg8bit" / "val").is_dir():
            out += [(s, False) for s in find_cityscapes(root, "val", policy=policy)]
        return out
    if dataset == "acdc":
        return [(s, True) for s in find_acdc(root, "train", policy=policy)]
    if dataset == "darkzurich":
        return [
            (s, True) for s in find_darkzurich(root, "val", conditions=["night"], policy=policy)
        ]
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")


def _up_to_date(label: Path, output: Path) -> bool:
    if output == label:
        return True
    try:
        return output.stat().st_mtime_ns >= label.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# --------------------------------------------------------------------------- one label


def _atomic_png(array: np.ndarray, path: Path) -> None:
    """Write under a temporary name in the same folder, then rename: all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            Image.fromarray(array).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def process(job: Job) -> tuple[str, Any]:
    """("ok", per-class pixel counts) or ("bad", message). Runs in the worker processes."""
    try:
        if job.convert:
            if job.encoding == "synthia":
                ids = read_synthia_ids(job.label)
            else:
                ids = read_label_ids(job.label)
            train = to_train_ids(ids, job.encoding, job.label)
        else:
            train = to_train_ids(read_label_ids(job.output), "train_ids", job.output)
        hw = image_size(job.image)
        if hw is None:
            raise BadSampleError(f"cannot read the header of image {job.image} (not an image?)")
        if hw != train.shape:
            raise BadSampleError(
                f"label {job.label} is {train.shape[1]}x{train.shape[0]} but image {job.image} "
                f"is {hw[1]}x{hw[0]}; expected equal sizes"
            )
        if job.convert:
            _atomic_png(train, job.output)
        counts = np.bincount(train.ravel(), minlength=256)[:NUM_CLASSES]
        return "ok", [int(n) for n in counts]
    except BadSampleError as err:
        return "bad", str(err)


# --------------------------------------------------------------------------- statistics


def _entry(file: str, counts: list[int]) -> dict[str, Any]:
    return {"file": file, **{str(c): n for c, n in enumerate(counts) if n > 0}}


def _load_cache(root: Path) -> dict[str, list[int]]:
    """Counts from a previous run's statistics; unreadable or absent means none."""
    try:
        entries = json.loads((root / STATS_FILE).read_text())
        return {
            e["file"]: [int(e.get(str(c), 0)) for c in range(NUM_CLASSES)]
            for e in entries
            if isinstance(e, dict) and "file" in e
        }
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def class_statistics(
    counts: dict[str, list[int]], min_pixels: int
) -> tuple[list[dict[str, Any]], dict[str, list[list[Any]]]]:
    """(sample_class_stats, samples_with_class) in the format of the module docstring."""
    files = sorted(counts)
    stats = [_entry(f, counts[f]) for f in files]
    with_class: dict[str, list[list[Any]]] = {str(c): [] for c in range(NUM_CLASSES)}
    for f in files:
        for c, n in enumerate(counts[f]):
            if n > min_pixels:
                with_class[str(c)].append([f, n])
    return stats, with_class


def _atomic_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _in_use(tmp: Path) -> bool:
    """Whether a temporary file may belong to a live `prepare` (e.g. seeds of a sweep starting
    together on a fresh benchmark): its writer's pid still runs here and it is recent."""
    try:
        pid = int(tmp.name[: -len(TMP_SUFFIX)].rsplit(".", 1)[1])
        if time.time() - tmp.stat().st_mtime > 3600:
            return False
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True  # a live process of another user
    return pid != os.getpid()


def _remove_stray_temporaries(folders: Iterable[Path]) -> None:
    """Temporary files of an interrupted run; never a finished file, nor a live run's."""
    for folder in folders:
        for tmp in folder.glob(f".*{TMP_SUFFIX}"):
            if not _in_use(tmp):
                tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the pass


def prepare(
    dataset: str,
    root: str | Path,
    workers: int = 1,
    min_pixels: int = 3000,
    on_bad_sample: str = "skip",
    force: bool = False,
    progress: bool = True,
) -> Report:
    """Convert and count every label of `dataset` under `root`; see the module docstring."""
    root = Path(root)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if min_pixels < 0:
        raise ValueError(f"min_pixels must be >= 0, got {min_pixels}")
    policy = BadSamplePolicy(on_bad_sample)
    report = Report(dataset, root, skipped=policy.skipped)
    if dataset in ("gta", "cityscapes"):
        report.table_source = cityscapes_label_table()[1]
    samples = _samples(dataset, root, policy)
    report.labels = len(samples)
    _remove_stray_temporaries({root} | {s.label.parent for s, _ in samples})

    cache = {} if force else _load_cache(root)
    counts: dict[str, list[int]] = {}
    jobs: list[Job] = []
    for sample, in_stats in samples:
        output = converted_label_path(sample.label)
        up_to_date = not force and _up_to_date(sample.label, output)
        if output == sample.label:
            up_to_date = True  # nothing to write, ever
        rel = _relative(output, root)
        if up_to_date and (not in_stats or rel in cache):
            if in_stats:
                counts[rel] = cache[rel]
            report.cached += 1
            continue
        jobs.append(
            Job(sample.label, sample.image, output, sample.encoding, in_stats, not up_to_date)
        )

    bar = tqdm(
        total=len(jobs),
        desc=f"prepare {dataset}",
        unit="label",
        file=sys.stderr,
        disable=not progress or not jobs,
    )
    try:
        for job, (status, value) in _run(jobs, workers):
            bar.update()
            if status == "bad":
                policy.report(value)  # raises in `error` mode
                continue
            if job.stats:
                counts[_relative(job.output, root)] = value
            report.converted += job.convert
            report.counted += not job.convert
    finally:
        bar.close()

    stats, with_class = class_statistics(counts, min_pixels)
    _atomic_json(stats, root / STATS_FILE)
    _atomic_json(with_class, root / SAMPLES_FILE)
    return report


def _run(jobs: list[Job], workers: int) -> Iterable[tuple[Job, tuple[str, Any]]]:
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            yield job, process(job)
        return
    chunk = max(1, min(32, len(jobs) // (workers * 8)))
    # No cv2.setNumThreads in the workers: on a forked copy of a process whose OpenCV thread
    # pool has run (any resize before), it deadlocks; reading and writing PNGs is serial anyway.
    with get_context().Pool(workers) as pool:
        yield from zip(jobs, pool.imap(process, jobs, chunksize=chunk), strict=True)


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m duda.data.prepare",
        description="Convert a dataset's labels to Cityscapes train IDs and write the "
        "rare-class-sampling statistics, in one pass (safe to repeat and to interrupt).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--root", type=Path, required=True, help="the dataset's folder as shipped")
    p.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes to use"
    )
    p.add_argument(
        "--min-pixels",
        type=int,
        default=3000,
        help="samples_with_class.json lists a file for a class above this many pixels",
    )
    p.add_argument(
        "--on-bad-sample",
        choices=("skip", "error"),
        default="skip",
        help="a bad or unpaired file: warn and leave it out, or stop",
    )
    p.add_argument("--force", action="store_true", help="redo every file, ignore earlier output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    import warnings

    from duda.data.datasets import BadSampleWarning

    warnings.simplefilter("ignore", BadSampleWarning)  # listed once in the summary instead
    try:
        report = prepare(
            a.dataset,
            a.root,
            workers=a.workers,
            min_pixels=a.min_pixels,
            on_bad_sample=a.on_bad_sample,
            force=a.force,
            progress=not a.quiet,
        )
    except (DatasetLayoutError, BadSampleError, ValueError) as err:
        print(f"prepare: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, DatasetLayoutError) else 1
    if report.table_source:
        print(f"label table: {report.table_source}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    print(f"statistics: {a.root / STATS_FILE}, {a.root / SAMPLES_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
