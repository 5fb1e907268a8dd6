"""Read what an offline W&B run recorded (its `run-<id>.wandb` file), for tests.

The file is a LevelDB-style log (W&B's "datastore"): a 7-byte header, then 32 KiB blocks of
records, each `crc32 (4) | length (2, little-endian) | type (1) | data`, a protobuf `Record`
possibly split over blocks (type 1 full, 2 first, 3 middle, 4 last).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list[Any]:
    """The complete records so far (W&B may still be appending to the file)."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, parts, out = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer too short for a header: zero padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if pos + HEADER + length > len(data):  # still being written: read it next time
            break
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0:
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            out.append(record)
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    run_id: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per logged step
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (name, type)


def _finished_records(path: Path, timeout_s: float) -> list[Any]:
    """W&B's service process writes the file and may still be flushing it for a moment after
    `finish()` returns in the training process: wait for the run's `exit` record."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = records(path) if path.stat().st_size > HEADER else []
        if any(r.WhichOneof("record_type") == "exit" for r in found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} has no exit record after {timeout_s} s")
        time.sleep(0.1)


def read_offline_run(run_dir: Path, timeout_s: float = 30.0) -> OfflineRun:
    """The single offline run under `<run_dir>/wandb/`, once W&B has finished writing it."""
    (path,) = Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")
    run = OfflineRun()
    for record in _finished_records(path, timeout_s):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.group, run.tags = (
                r.run_id, r.display_name, r.run_group, list(r.tags),
            )  # fmt: skip
            run.config |= {_key(i): json.loads(i.value_json) for i in r.config.update}
        elif kind == "config":
            run.config |= {_key(i): json.loads(i.value_json) for i in record.config.update}
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run.summary |= {_key(i): json.loads(i.value_json) for i in record.summary.update}
        elif kind == "artifact":
            run.artifacts.append((record.artifact.name, record.artifact.type))
    return run
