"""`trainer.device` / `trainer.precision` resolution: what `auto` means on each machine."""

from __future__ import annotations

import pytest
import torch

from duda.engine import device as dev


def test_explicit_precision_is_kept_everywhere():
    for name in ("fp32", "bf16"):
        assert dev.resolve_precision(name, torch.device("cpu")) == name


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: native)
    assert dev.resolve_precision("auto", torch.device("cpu")) == expected


def test_auto_precision_on_cuda_asks_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert dev.resolve_precision("auto", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert dev.resolve_precision("auto", torch.device("cuda")) == "bf16"


def test_cpu_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    monkeypatch.setattr(dev, "Path", lambda _: fake)
    fake.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert not dev.cpu_has_fast_bf16()
    fake.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    assert dev.cpu_has_fast_bf16()
    fake.unlink()
    assert not dev.cpu_has_fast_bf16()  # no /proc (not Linux): assume emulated bf16


def test_cuda_without_a_gpu_names_the_option():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="trainer.device=cuda"):
        dev.resolve_device("cuda")
