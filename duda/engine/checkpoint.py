"""Checkpoints written atomically and verifiably, read without executing code.

A checkpoint is written to a temporary file in the same directory, flushed to disk and renamed
over the final name, so a crash or a full disk never leaves a half-written `*.pt` behind and the
previous checkpoint stays valid. Training checkpoints also get a `<name>.sha256` file (the
format of `sha256sum`, so `sha256sum -c` checks it by hand), written after the checkpoint: a
checkpoint without one, or whose bytes no longer match it (truncated by a full disk, damaged
in a copy), is not used to resume. Loading uses `weights_only=True`: a checkpoint from an
untrusted source cannot run code.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

CHECKSUM_SUFFIX = ".sha256"
_ITER_NAME = re.compile(r"^iter_(\d+)\.pt$")


class CorruptCheckpoint(ValueError):
    """A checkpoint that is incomplete or damaged; the message says how."""


class OutputWriteError(OSError):
    """The run directory cannot take the run's outputs; the message names the path."""


class _HashingWriter:
    """Passes torch.save's bytes through to the file while hashing them (no second read)."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def checksum_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _write_atomic(path: Path, write) -> Any:
    """`write(file)` into a temporary file next to `path`, fsync, rename over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable too (a power cut could otherwise undo them)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | Path, checksum: bool = False) -> Path:
    """Write `state` atomically; with `checksum`, also its `.sha256` file, after it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write_state(f: BinaryIO) -> str:
        writer = _HashingWriter(f)
        try:
            torch.save(state, writer)
        except RuntimeError as err:
            # torch's zip writer turns a failed write (a full disk, a quota) into a
            # RuntimeError raised while the OSError is handled; callers act on OSErrors
            if isinstance(err.__context__, OSError):
                raise err.__context__ from err
            raise
        return writer.sha256.hexdigest()

    digest = _write_atomic(path, write_state)
    if checksum:
        line = f"{digest}  {path.name}\n".encode()
        _write_atomic(checksum_path(path), lambda f: f.write(line))
    _fsync_dir(path.parent)
    return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checkpoint(path: str | Path) -> None:
    """Raise CorruptCheckpoint unless `path` matches its `.sha256` file."""
    path = Path(path)
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        raise CorruptCheckpoint(f"{path} has no {sidecar.name}: its write did not finish")
    expected = sidecar.read_text().split()[:1]
    if not expected or file_sha256(path) != expected[0]:
        raise CorruptCheckpoint(f"{path} does not match {sidecar.name}: truncated or damaged")


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", verify: bool = False
) -> dict[str, Any]:
    """Read a checkpoint without running code; with `verify`, check its checksum first and
    report an unreadable archive as CorruptCheckpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not verify:
        return torch.load(path, map_location=map_location, weights_only=True)
    verify_checkpoint(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError) as err:  # torch's messages for a broken zip archive
        raise CorruptCheckpoint(f"{path} cannot be read: {str(err).splitlines()[0]}") from err


def checkpoint_iteration(path: Path) -> int | None:
    match = _ITER_NAME.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(directory: str | Path) -> list[Path]:
    """`iter_N.pt` files of `directory`, newest (largest N) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if checkpoint_iteration(p) is not None]
    return sorted(found, key=checkpoint_iteration, reverse=True)


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints (`keep` <= 0 keeps all); older
    incomplete ones go too. Returns the deleted files."""
    if keep <= 0:
        return []
    complete = [p for p in list_checkpoints(directory) if checksum_path(p).is_file()]
    if len(complete) <= keep:
        return []
    oldest_kept = checkpoint_iteration(complete[keep - 1])
    deleted = []
    for path in list_checkpoints(directory):
        if checkpoint_iteration(path) < oldest_kept:
            for p in (path, checksum_path(path)):
                if p.exists():
                    p.unlink()
                    deleted.append(p)
    return deleted


def remove_stale_temporaries(directory: str | Path) -> None:
    """Temporary files of writes that a kill interrupted (never valid checkpoints)."""
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def ensure_writable(directory: str | Path) -> None:
    """Fail before any work if `directory` cannot take files (read-only, not a directory,
    full), rather than after hours of training at the first checkpoint."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(directory / ".write_test", lambda f: f.write(b"ok"))
        (directory / ".write_test").unlink()
    except OSError as err:
        raise OutputWriteError(
            f"cannot write to {directory}: {err.strerror or err}. The run keeps its checkpoints "
            "and results there; choose a writable place with hydra.run.dir=... "
            "(or paths.output_dir=...)"
        ) from err
