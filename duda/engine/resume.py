"""Continue a run from its checkpoint as if it had never stopped.

A training checkpoint (`Trainer.checkpoint_state`) holds the method's networks, optimizers,
schedules and their own generators, the loop's log window and last evaluation, the loaders'
positions and the global RNG states. This module finds the checkpoint to continue from
(`trainer.resume`), refuses one that belongs to another architecture, and puts the run
directory's `metrics.jsonl` back to the checkpoint's iteration.
"""

from __future__ import annotations

import json
import pickle
import random
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from duda.config import ConfigError, flatten
from duda.engine.checkpoint import (
    CorruptCheckpoint,
    checksum_path,
    file_sha256,
    list_checkpoints,
    load_checkpoint,
)

FORMAT = 2  # training checkpoints that can be resumed exactly
REQUIRED = ("iteration", "method", "config", "loop", "data", "rng")

# Settings that decide the shapes in the checkpoint: a difference is an error.
_NETWORK = (
    "backbone.name",
    "backbone.output_stride",
    "head.name",
    "head.embed_dim",
    "head.dilations",
)
ARCHITECTURE = (
    *(f"model.{k}" for k in _NETWORK),
    *(f"model.large.{k}" for k in _NETWORK),
    "dataset.num_classes",
    "uda.name",
    "distill.name",
)
# Settings that do not change what is trained (where and how fast it runs, what is logged).
INCIDENTAL = (
    "model.backbone.pretrained",  # the checkpoint's weights replace the initial ones
    "model.large.backbone.pretrained",
    "trainer.resume",
    "trainer.num_workers",
    "trainer.threads",
    "trainer.progress",
    "trainer.device",
    "trainer.keep_checkpoints",
    "trainer.checkpoint_interval",
    "trainer.max_nonfinite_steps",
    "trainer.log_interval",
    "trainer.eval_",
    "logger",
    "paths",
    "run_name",
    "dataset.source.root",
    "dataset.target.root",
    "dataset.on_bad_sample",
)


@dataclass
class ResumePoint:
    path: Path
    state: dict[str, Any]

    @property
    def iteration(self) -> int:
        return int(self.state["iteration"])


def rng_state() -> dict[str, Any]:
    """Every global RNG a training step may draw from, in types `weights_only` loading reads."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = torch.from_numpy(np_state["state"]["key"].astype(np.int64))
    return {
        "python": random.getstate(),
        "numpy": np_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = dict(np_state["state"])
    np_state["state"]["key"] = np_state["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    elif cuda:
        warnings.warn(
            "the checkpoint's CUDA RNG states do not fit this machine's GPUs; not restored",
            stacklevel=2,
        )


def _load_resumable(path: Path, verify: bool) -> dict[str, Any]:
    try:
        state = load_checkpoint(path, verify=verify)
    except pickle.UnpicklingError as err:  # weights_only refused it: it would have run code
        raise CorruptCheckpoint(
            f"{path} holds objects that would run code on loading; refused (not loaded)"
        ) from err
    missing = [k for k in REQUIRED if k not in state] if isinstance(state, dict) else REQUIRED
    if missing or state.get("format") != FORMAT:
        raise CorruptCheckpoint(
            f"{path} is not a resumable training checkpoint of this version "
            f"(format {state.get('format') if isinstance(state, dict) else None}, expected "
            f"{FORMAT}; missing {list(missing)})"
        )
    return state


def find_resume_point(checkpoint_dir: Path, resume: str) -> ResumePoint | None:
    """`none`: start fresh. `auto`: the newest checkpoint of `checkpoint_dir` that passes its
    checksum and loads, warning about each newer one that does not; none at all: start fresh.
    A path: that checkpoint (checked against its `.sha256` where one exists), or an error."""
    if resume == "none":
        return None
    if resume == "auto":
        for path in list_checkpoints(checkpoint_dir):
            try:
                return ResumePoint(path, _load_resumable(path, verify=True))
            except CorruptCheckpoint as err:
                warnings.warn(f"{err}; trying the previous checkpoint", stacklevel=2)
        return None
    path = Path(resume)
    try:
        return ResumePoint(path, _load_resumable(path, verify=checksum_path(path).is_file()))
    except (CorruptCheckpoint, FileNotFoundError) as err:
        raise ConfigError(f"trainer.resume={resume}: {err}") from err


def _touches(key: str, prefixes: tuple[str, ...]) -> bool:
    """`key` lies under one of `prefixes` (a trailing `_` matches any continuation), or holds
    one (`model.large` set on one side only holds `model.large.head`)."""
    for p in prefixes:
        if key == p or key.startswith(p if p.endswith("_") else p + ".") or p.startswith(key + "."):
            return True
    return False


def check_resumable(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Raise ConfigError where the checkpoint's run had another architecture; return one line
    per other setting that differs (the resumed run then differs from an uninterrupted one)."""
    old, new = flatten(saved), flatten(current)
    keys = sorted(set(old) | set(new))
    differs = [k for k in keys if old.get(k, "<unset>") != new.get(k, "<unset>")]
    shape = [k for k in differs if _touches(k, ARCHITECTURE)]
    if shape:
        lines = "; ".join(
            f"{k}={old.get(k, '<unset>')} there, {new.get(k, '<unset>')} here" for k in shape
        )
        raise ConfigError(
            f"the checkpoint belongs to another architecture: {lines}. Resume with the "
            "settings it was written with, or start a new run directory"
        )
    return [
        f"{k}: {old.get(k, '<unset>')} -> {new.get(k, '<unset>')}"
        for k in differs
        if not _touches(k, INCIDENTAL)
    ]


def truncate_metrics(path: Path, iteration: int) -> int:
    """Drop the records of iterations after `iteration` (written after the checkpoint, so
    the resumed run writes them again) and a half-written last line; returns lines dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if line.endswith("\n") and record.get("iteration", 0) <= iteration:
            kept.append(line)
    if len(kept) != len(lines):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)
    return len(lines) - len(kept)


def reference_digests(extra_teachers: Iterable[str]) -> dict[str, Any]:
    """Files a run reads but does not copy into its checkpoints (the frozen extra teachers of
    multi-teacher fusion), by SHA-256, so a resumed run notices when one has changed."""
    teachers = {str(p): file_sha256(p) for p in map(Path, extra_teachers) if p.is_file()}
    return {"extra_teachers": teachers} if teachers else {}


def open_resume_point(
    checkpoint_dir: Path, resume: str, config: dict[str, Any], references: dict[str, Any]
) -> ResumePoint | None:
    """The checkpoint to continue from, checked against this run's config (ConfigError for
    another architecture); what keeps the resumed run from equalling an uninterrupted one
    (changed settings, changed reference files) is reported as a warning."""
    point = find_resume_point(checkpoint_dir, resume)
    if point is None:
        if resume == "auto":
            none = "no usable" if list_checkpoints(checkpoint_dir) else "no"
            print(f"trainer.resume=auto: {none} checkpoint in {checkpoint_dir}; starting afresh")
        return None
    changed = check_resumable(point.state["config"], config)
    saved = point.state.get("references", {}).get("extra_teachers", {})
    changed += [
        f"{path}: contents changed since the checkpoint"
        for path, digest in references.get("extra_teachers", {}).items()
        if saved.get(path, digest) != digest
    ]
    if changed:
        warnings.warn(
            f"resuming from {point.path} with settings that differ from its run's, so the "
            "result will not equal an uninterrupted run: " + "; ".join(changed),
            stacklevel=2,
        )
    return point


class Resumable(Protocol):
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def resume_into(trainer: Resumable, point: ResumePoint, metrics: Path) -> None:
    """Load the checkpoint into the freshly built run, then cut `metrics` back to its
    iteration: the resumed run writes the later records again."""
    try:
        trainer.load_state_dict(point.state)
    except (RuntimeError, KeyError, ValueError) as err:  # what load_state_dict raises
        reason = str(err).splitlines()[0]
        raise ConfigError(f"{point.path} does not fit this run: {reason}") from err
    truncate_metrics(metrics, point.iteration)
