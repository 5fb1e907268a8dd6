"""The device of a run or a command, from a config value or a flag (`auto`, `cpu`, `cuda:N`),
and the autocast dtype its `trainer.precision` means there."""

from __future__ import annotations

from pathlib import Path

import torch


def resolve_device(name: str, option: str = "trainer.device") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it fails naming `option`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option}={name} but CUDA is not available; use {option}=cpu")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX): there autocast to bf16
    speeds MiT training up (a MiT-B1 base-UDA step 1.4x on the development AMD EPYC); elsewhere
    it may be emulated, so fp32 is the safe choice."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """`fp32` or `bf16`; `auto` means bf16 where the device computes it natively (CUDA with
    bf16 support, a CPU with AVX512-BF16/AMX) and fp32 elsewhere."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
