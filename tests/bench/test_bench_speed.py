"""The speed benchmark: its pure parts by hand, and the command end to end in smoke mode."""

from __future__ import annotations

import json

import pytest
import torch

from duda.bench import speed
from duda.bench.__main__ import main
from duda.bench.memory import PeakMemory


def test_fewer_than_twenty_iterations_need_quick():
    with pytest.raises(ValueError, match="--quick"):
        speed.settings_from("cpu", iters=5).check()
    speed.settings_from("cpu", iters=5, quick=True).check()
    speed.settings_from("smoke").check()  # the smoke preset is quick by definition
    assert main(["speed", "--out", "unused", "--iters", "3"]) == 2


def test_presets_and_command_line_values():
    s = speed.settings_from("paper", crop=256)
    assert (s.large, s.small, s.crop, s.infer_hw) == ("mit_b5", "mit_b0", 256, (512, 1024))
    with pytest.raises(ValueError, match="preset"):
        speed.settings_from("huge")
    with pytest.raises(ValueError, match="skip"):
        speed.settings_from("smoke", skip=("everything",)).check()


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-40GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ],
)
def test_peak_bf16_table(name, peak):
    assert speed.peak_bf16_tflops(name) == peak


def test_loader_demand_by_hand():
    data = {"source": {"mean_s": 0.1}, "target": {"mean_s": 0.05}}
    steps = {"uda_large": {"median_s": 0.5}, "source_only": {"median_s": 0.1}}
    demand = speed.loader_demand(data, steps, batch=2, workers_per_loader=4)
    # 2 x 0.1 s + 2 x 0.05 s of decoding per 0.5 s step: 0.6 workers busy; 4 images / 0.5 s
    assert demand["uda_large"]["workers_needed"] == pytest.approx(0.6)
    assert demand["uda_large"]["images_per_s"] == pytest.approx(8.0)
    assert demand["uda_large"]["workers_available"] == 8
    # source-only reads the source loader only: 0.2 s per 0.1 s step
    assert demand["source_only"]["workers_needed"] == pytest.approx(2.0)
    assert demand["source_only"]["headroom"] == pytest.approx(2.0)


def test_targets_say_met_or_not():
    report = {
        "machine": {"device": "cpu"},
        "duda_stage1_vs_uda_large": 1.40,
        "duda_stage2_vs_uda_large": 0.30,
        "ema_foreach_speedup": 1.6,
    }
    t = speed.targets(report)
    assert t["duda_stage1_vs_uda_large"]["met"] is False
    assert t["duda_stage2_vs_uda_large"]["met"] is True
    assert t["ema_foreach_speedup"]["met"] is True
    report["machine"]["device"] = "cuda"  # the GPU target of the EMA is 10x
    assert speed.targets(report)["ema_foreach_speedup"]["met"] is False


def test_cpu_peak_memory_sees_an_allocation():
    memory = PeakMemory(torch.device("cpu"))
    memory.start()
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    del x
    assert memory.peak_growth() >= 48 * 2**20


def test_speed_command_end_to_end_smoke(tmp_path):
    code = main(
        [
            "speed",
            "--out",
            str(tmp_path),
            "--preset",
            "smoke",
            "--large-head",
            "segformer",
            "--crop",
            "32",
            "--infer-hw",
            "32x64",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "speed.json").read_text())
    steps = report["steps"]
    assert list(steps) == list(speed.STEPS)
    for key in ("duda_stage1_vs_uda_large", "duda_stage2_vs_uda_large", "ema_foreach_speedup"):
        assert isinstance(report[key], float) and report[key] > 0
    # the ratios are the medians' ratios, against the large network's step of the same run
    for name, stage in (
        ("duda_stage1", "duda_stage1_vs_uda_large"),
        ("duda_stage2", "duda_stage2_vs_uda_large"),
    ):
        assert report[stage] == pytest.approx(
            steps[name]["median_s"] / steps["uda_large"]["median_s"]
        )
        assert len(steps[name]["times_s"]) == 2
    assert steps["uda_large"]["time_vs_uda_large"] == pytest.approx(1.0)
    assert steps["uda_large"]["peak_memory_mb"] > 0
    ema = report["ema"]
    assert ema["speedup"] == pytest.approx(ema["loop_s"] / ema["foreach_s"])
    assert ema["floor_s"] == pytest.approx(12 * ema["params"] / (ema["copy_bandwidth_gb_s"] * 1e9))
    assert report["data"]["source"]["images_per_s"] > 0
    inference = report["inference"]
    assert inference["onnxruntime"] == {"measured": True, "reason": None}  # a CPU run
    assert inference["student"]["onnx_latency_s"] > 0 and inference["large"]["onnx_latency_s"] > 0
    assert report["machine"]["torch"] == torch.__version__
    md = (tmp_path / "speed.md").read_text()
    assert "DUDA stage 1" in md and "ema_foreach_speedup" in md


def test_inference_builds_the_configured_head_width():
    """The large network's inference figures come from the composed head config (768 channels
    for `segformer768`), not from the head's name alone."""
    h, w = 32, 64
    gflops = {}
    for head in ("segformer", "segformer768"):
        s = speed.settings_from("smoke", large_head=head, infer_hw=(h, w), infer_iters=1)
        report = speed.measure_inference(s, torch.device("cpu"), lambda *_: None)
        gflops[head] = report["large"]["gflops"]
    # at least the 1x1 fuse conv's extra multiply-adds (4E -> E at 1/4 resolution), x2 FLOPs
    fuse = 2 * (h // 4) * (w // 4) * 4 * (768**2 - 256**2)
    assert (gflops["segformer768"] - gflops["segformer"]) * 1e9 >= fuse
