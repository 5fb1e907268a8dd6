"""W&B run group and tags, derived from the resolved config.

The group is what W&B averages over, so it must hold exactly the runs that differ in their seed
alone: the run name (without its seed) keeps it readable, and a hash of every setting that can
change the result keeps two sweep points with the same name (e.g. `loss.kd=0.5` vs `1.0`) apart.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Keys that say where, how fast or how often a run reports, not what it learns: they stay out
# of the hash (the speed levers give the same outputs, tests/models/test_levers.py).
NOT_SETTINGS = (
    "seed",
    "run_name",
    "paths",
    "logger",
    "dataset.source.root",  # where the data lies, not what it is
    "dataset.target.root",
    "uda.log_pl_quality",
    "model.channels_last",
    "model.grad_checkpointing",
    "model.compile",
    "trainer.progress",
    "trainer.num_workers",
    "trainer.threads",
    "trainer.device",
    "trainer.log_interval",
    "trainer.eval_interval",
    "trainer.eval_batch_size",
    "trainer.checkpoint_interval",
    "trainer.keep_checkpoints",
    "trainer.resume",
)
MAX_TAG_LEN = 64  # W&B rejects longer tags


def _drop(config: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(leaf, None)


def settings_hash(config: dict[str, Any], length: int = 6) -> str:
    """Short hash of the resolved config without the seed and other non-settings."""
    settings = json.loads(json.dumps(config, default=str))  # a deep copy with plain values
    for key in NOT_SETTINGS:
        _drop(settings, key)
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def run_group(config: dict[str, Any]) -> str:
    """`<run name without _s<seed>>-<settings hash>`: seeds of one setting share it."""
    name = str(config.get("run_name") or "run")
    suffix = f"_s{config.get('seed')}"
    base = name.removesuffix(suffix)
    return f"{base}-{settings_hash(config)}"


def _network(net: dict[str, Any] | None) -> str | None:
    if not net:
        return None
    return f"{net['backbone']['name']}+{net['head']['name']}"


def run_tags(config: dict[str, Any]) -> list[str]:
    """One tag per component that is on (`uda:mic`, `rcs`, `kd`, …), then `logger.tags`."""
    uda, distill, model = config["uda"], config["distill"], config["model"]
    tags = [
        f"dataset:{config['dataset']['name']}",
        f"uda:{uda['name']}",
        f"student:{_network(model)}",
    ]
    if uda.get("base"):
        tags.append(f"base:{uda['base']}")
    if config["dataset"].get("rcs", {}).get("enabled"):
        tags.append("rcs")
    if uda["name"] not in ("source_only", "oracle"):
        if uda["fd"]["enabled"]:
            tags.append("fd")
        if uda["mic"]["enabled"] or uda.get("base") == "mic":
            tags.append("mic")
    if distill["name"] != "none":
        tags += [
            f"distill:{distill['name']}",
            f"large:{_network(model.get('large'))}",
            f"kd-schedule:{distill['schedule']['name']}",
            f"fusion:{distill['fusion']['name']}",
            f"teachers:{1 + len(distill['extra_teachers'])}",
        ]
        if config["loss"]["kd"] > 0:
            tags.append("kd")
        if distill["inconsistency"]["enabled"]:
            tags.append("inconsistency")
        if distill["student_in_stage1"]:
            tags.append("pre-adaptation")
    tags += [str(t) for t in config.get("logger", {}).get("tags", [])]
    return list(dict.fromkeys(t[:MAX_TAG_LEN] for t in tags))  # unique, in order
