"""Fixtures shared by the deployment tests: one CPU thread, and a tiny trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_student import save_tiny_run


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_run(tmp_path_factory.mktemp("run") / "model_final.pt")
