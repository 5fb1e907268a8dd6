"""The device of a run or a command, from a config value or a flag (`auto`, `cpu`, `cuda:N`)."""

from __future__ import annotations

import torch


def resolve_device(name: str, option: str = "trainer.device") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without it fails naming `option`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option}={name} but CUDA is not available; use {option}=cpu")
    return device
