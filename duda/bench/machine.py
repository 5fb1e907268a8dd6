"""Where a figure was measured: without the machine (and its load) a timing means nothing."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe_machine(device: torch.device) -> dict[str, Any]:
    """CPU, cores, torch, accelerator and the load average at the time of measuring."""
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device.type,
        "device_name": "cpu",
        "load_average": load_average(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        total = torch.cuda.get_device_properties(device).total_memory
        info["device_memory_gib"] = round(total / 2**30, 1)
    return info


def describe_line(machine: dict[str, Any]) -> str:
    """One line for a table caption."""
    where = machine["device_name"] if machine["device"] == "cuda" else "CPU only"
    load = machine.get("load_average")
    load_text = f", load average {load[0]:.1f}" if load else ""
    return (
        f"{machine['date']}, {machine['cpu']} ({machine['cores']} cores{load_text}), {where}, "
        f"torch {machine['torch']}"
    )
