"""`python -m duda.bench speed`: step time, memory, EMA, data and inference figures of one run.

Every training-step figure is a ratio to the DAFormer-style step of the large network measured
in the same process, so that a loaded or slow machine still gives comparable numbers. Methods
are built exactly as `python -m duda.train` builds them (Hydra configs of the embedded
benchmark's experiments, with the networks and crop of the chosen preset) and fed fixed random
batches, so the time measured is the method's, not the loader's; the loader is measured apart
and compared with what the step consumes.
"""

from __future__ import annotations

import gc
import importlib.util
import itertools
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from duda.bench import stats
from duda.bench.configs import compose
from duda.bench.machine import describe_line, describe_machine
from duda.bench.memory import PeakMemory, release_free_memory
from duda.engine.device import resolve_device, resolve_precision

STEPS = ("source_only", "uda_small", "uda_large", "duda_stage1", "duda_stage2")
SECTIONS = ("steps", "ema", "data", "inference")
MIN_ITERS = 20  # the issue: median over at least 20 iterations unless asked for a quick run

# Dense bf16 tensor-core peak, TFLOP/s, from the vendors' datasheets. Matched in order on the
# lower-cased device name, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("gh200", 989.0),
    ("h200", 989.0),
    ("h100 pcie", 756.0),
    ("h100", 989.0),
    ("b200", 2250.0),
    ("a100", 312.0),
    ("l40s", 362.0),
    ("l4", 121.0),
    ("a10", 125.0),
    ("rtx 4090", 165.0),
    ("rtx 3090", 71.0),
)

# Real frame sizes (W, H) of GTA5 and Cityscapes, whose PNGs the loader decodes in training.
GTA_SIZE = (1914, 1052)
CITYSCAPES_SIZE = (2048, 1024)

PRESETS: dict[str, dict[str, Any]] = {
    # A few minutes on a 2-core CPU: the embedded benchmark's pair (SegFormer-B2, i.e. MiT-B2 +
    # the 768-channel head, vs MiT-B0 + the 256-channel head) at a small crop; EMA, data and
    # inference at their real sizes.
    "cpu": {
        "large": "mit_b2",
        "large_head": "segformer768",
        "small": "mit_b0",
        "small_head": "segformer",
        "crop": 128,
        "iters": 20,
        "warmup": 3,
        "ema_backbone": "mit_b5",
        "ema_head": "daformer",
        "ema_iters": 20,
        "data_crop": 512,
        "data_images": 2,
        "data_iters": 12,
        "data_source_size": GTA_SIZE,
        "data_target_size": CITYSCAPES_SIZE,
        "infer_hw": (512, 1024),
        "infer_iters": 3,
    },
    # The paper's setting, for a GPU: MiT-B5 + DAFormer head vs MiT-B0 + SegFormer head,
    # 2 + 2 crops of 512x512, inference at 512x1024.
    "paper": {
        "large": "mit_b5",
        "large_head": "daformer",
        "small": "mit_b0",
        "small_head": "segformer",
        "crop": 512,
        "iters": 30,
        "warmup": 5,
        "ema_backbone": "mit_b5",
        "ema_head": "daformer",
        "ema_iters": 50,
        "data_crop": 512,
        "data_images": 4,
        "data_iters": 40,
        "data_source_size": GTA_SIZE,
        "data_target_size": CITYSCAPES_SIZE,
        "infer_hw": (512, 1024),
        "infer_iters": 30,
    },
    # Seconds: tiny networks, crops and images, 2 iterations; checks that everything runs.
    "smoke": {
        "large": "mit_b0",
        "large_head": "daformer",
        "small": "mit_b0",
        "small_head": "segformer",
        "crop": 64,
        "iters": 2,
        "warmup": 1,
        "ema_backbone": "mit_b0",
        "ema_head": "segformer",
        "ema_iters": 3,
        "data_crop": 64,
        "data_images": 1,
        "data_iters": 2,
        "data_source_size": (240, 132),
        "data_target_size": (256, 128),
        "infer_hw": (64, 128),
        "infer_iters": 2,
        "flops": False,
        "threads": 1,
    },
}


@dataclass
class SpeedSettings:
    """What one speed run measures; a preset fills every field the command line leaves unset."""

    large: str = "mit_b2"
    large_head: str = "daformer"
    small: str = "mit_b0"
    small_head: str = "segformer"
    crop: int = 128
    batch: int = 2  # crops per domain and step: the reference's 2 source + 2 target
    iters: int = 20
    warmup: int = 3
    ema_backbone: str = "mit_b5"
    ema_head: str = "daformer"
    ema_iters: int = 20
    data_crop: int = 512
    data_images: int = 2
    data_iters: int = 12
    data_source_size: tuple[int, int] = GTA_SIZE
    data_target_size: tuple[int, int] = CITYSCAPES_SIZE
    infer_hw: tuple[int, int] = (512, 1024)
    infer_iters: int = 3
    device: str = "auto"
    precision: str = "auto"  # bf16 where the device computes it natively (as trainer.precision)
    threads: int | None = None
    fd: bool = False  # the ImageNet feature distance of the large pair (needs no weights here)
    flops: bool = True  # count FLOPs of one step with torch.utils.flop_counter
    quick: bool = False  # allow fewer than MIN_ITERS iterations
    skip: tuple[str, ...] = field(default_factory=tuple)
    preset: str = "cpu"

    def check(self) -> None:
        if not self.quick and min(self.iters, self.ema_iters) < MIN_ITERS:
            raise ValueError(
                f"--iters/--ema-iters below {MIN_ITERS} give medians too noisy to report; "
                "pass --quick to allow it (smoke runs)"
            )
        if min(self.iters, self.ema_iters, self.data_iters, self.infer_iters) < 1:
            raise ValueError("every iteration count must be at least 1")
        unknown = set(self.skip) - set(SECTIONS)
        if unknown:
            raise ValueError(f"--skip {sorted(unknown)}: expected some of {list(SECTIONS)}")


def settings_from(preset: str, **given: Any) -> SpeedSettings:
    """The preset's values, overridden by every argument that is not None."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; expected one of {sorted(PRESETS)}")
    values = {**PRESETS[preset], "preset": preset}
    names = {f.name for f in fields(SpeedSettings)}
    values |= {k: v for k, v in given.items() if v is not None and k in names}
    if preset == "smoke":
        values["quick"] = True
    return SpeedSettings(**values)


# ------------------------------------------------------------------------------ timing


def time_once(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call: CUDA events around it on a GPU (the host returns before the
    kernels finish), the wall clock on a CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    return [time_once(fn, device) for _ in range(iters)]


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call (forward and backward ops alike), one multiply-add = 2 FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_bf16_tflops(device_name: str) -> float | None:
    name = device_name.lower()
    for key, peak in PEAK_BF16_TFLOPS:
        if key in name:
            return peak
    return None


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        release_free_memory()


# ------------------------------------------------------------------------------ training steps


def step_configs(s: SpeedSettings) -> dict[str, Any]:
    """The composed configs of the four methods, as the embedded benchmark's experiments with
    the preset's networks. DUDA's large pair gets exactly the large network's backbone and head
    config of the base-UDA run, so the two are the same network."""
    from omegaconf import open_dict

    small = [f"model/backbone={s.small}", f"model/head={s.small_head}"]
    fd = ["uda.fd.enabled=true"] if s.fd else []
    cfgs = {
        "source_only": compose(["+experiment=synth_source_only", *small]),
        "uda_small": compose(["+experiment=synth_daformer_mit_b0", *small, *fd]),
        "uda_large": compose(
            [
                "+experiment=synth_daformer_mit_b0",
                f"model/backbone={s.large}",
                f"model/head={s.large_head}",
                *fd,
            ]
        ),
    }
    duda = compose(["+experiment=synth_duda", *small, *fd])
    with open_dict(duda):
        duda.model.large.backbone = cfgs["uda_large"].model.backbone
        duda.model.large.head = cfgs["uda_large"].model.head
    cfgs["duda"] = duda
    return cfgs


def synthetic_batch(
    n: int, crop: int, num_classes: int, generator: torch.Generator, device: torch.device
) -> dict[str, torch.Tensor]:
    """Normalised random images and blocky labels (a few classes per crop, so ClassMix has
    something to paste), plus the all-valid pseudo-label mask target crops carry."""
    image = torch.randn(n, 3, crop, crop, generator=generator)
    cells = max(crop // 16, 1)
    coarse = torch.randint(0, num_classes, (n, 1, cells, cells), generator=generator)
    label = torch.nn.functional.interpolate(coarse.float(), size=(crop, crop), mode="nearest")
    return {
        "image": image.to(device),
        "label": label[:, 0].long().to(device),
        "valid": torch.ones(n, crop, crop, dtype=torch.uint8, device=device),
    }


def _step_result(
    times: list[float], peak: int, flops: int | None, peak_tflops: float | None
) -> dict[str, Any]:
    median = stats.median(times)
    out: dict[str, Any] = {
        "median_s": median,
        "times_s": [round(t, 6) for t in times],
        "peak_memory_mb": peak / 2**20,
        "gflops": flops / 1e9 if flops else None,
        "achieved_tflops": flops / median / 1e12 if flops else None,
    }
    if flops and peak_tflops:
        out["peak_bf16_fraction"] = out["achieved_tflops"] / peak_tflops
    return out


def method_steps(
    name: str, method: Any, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, Callable[[], Any]]:
    """One training step per call, by step name. DUDA gives its two stages; the first
    stage-2 call retires the large student, and stage 1 cannot run after it."""
    it = itertools.count(1)
    if name == "source_only":
        return {name: lambda: method.train_step(source, None, next(it))}
    if name != "duda":
        return {name: lambda: method.train_step(source, target, next(it))}
    stage2_it = itertools.count(method.pre_iters)
    return {
        "duda_stage1": lambda: method.pre_adaptation_step(source, target, next(it)),
        "duda_stage2": lambda: method.finetune_step(source, target, next(stage2_it)),
    }


def measure_steps(
    s: SpeedSettings, device: torch.device, amp_dtype: torch.dtype | None, log: Callable
) -> dict[str, dict[str, Any]]:
    """Median step time and peak memory of each method, in two passes.

    Memory (and FLOPs): one method at a time, as growth over the memory in use before it was
    built; DUDA's stage 2 continues the stage-1 object after retiring its large student, as
    training does. Time: every method alive at once (DUDA twice: one object per stage),
    stepped in turn, one step of each per round, so that a change of machine load or clock
    hits every method alike and the ratios to the large step stay comparable. Timed one method
    after the other, two runs on the same idle 2-core CPU gave stage-1 ratios of 1.11 and 1.37.
    The price: each step starts with caches the previous method filled."""
    from duda.distill.build import build_method

    cfgs = step_configs(s)
    generator = torch.Generator().manual_seed(0)
    classes = cfgs["uda_large"].dataset.num_classes
    source = synthetic_batch(s.batch, s.crop, classes, generator, device)
    target = synthetic_batch(s.batch, s.crop, classes, generator, device)
    del target["label"]  # real target crops carry no label the step may use
    peak_tflops = (
        peak_bf16_tflops(torch.cuda.get_device_name(device))
        if device.type == "cuda" and amp_dtype == torch.bfloat16
        else None
    )
    methods = ("uda_large", "uda_small", "source_only", "duda")

    peaks: dict[str, int] = {}
    flops: dict[str, int | None] = {}
    for name in methods:
        _free(device)
        memory = PeakMemory(device)
        memory.start()
        method = build_method(cfgs[name], device, amp_dtype)
        for step_name, fn in method_steps(name, method, source, target).items():
            if step_name == "duda_stage2":
                fn()  # retires the large student; stage 2's peak starts after it
                _free(device)
                memory.reset_peak()
            for _ in range(max(1, s.warmup)):
                fn()
            peaks[step_name] = memory.peak_growth()
            flops[step_name] = count_flops(fn) if s.flops else None
        del method, fn
    _free(device)

    timed: dict[str, Callable[[], Any]] = {}
    for name in methods:
        steps = method_steps(name, build_method(cfgs[name], device, amp_dtype), source, target)
        if name == "duda":
            stage2 = method_steps(name, build_method(cfgs[name], device, amp_dtype), source, target)
            steps["duda_stage2"] = stage2["duda_stage2"]
            steps["duda_stage2"]()  # retires that object's large student
        timed |= steps
    for _ in range(s.warmup):
        for fn in timed.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(s.iters):
        for name, fn in timed.items():
            times[name].append(time_once(fn, device))
    del timed, steps, stage2
    _free(device)

    results = {
        name: _step_result(times[name], peaks[name], flops[name], peak_tflops) for name in STEPS
    }
    for name in STEPS:
        log(f"  {name:<12} {results[name]['median_s'] * 1e3:9.1f} ms/step")
    reference = results["uda_large"]
    for r in results.values():
        r["time_vs_uda_large"] = stats.ratio(r["median_s"], reference["median_s"])
        r["memory_vs_uda_large"] = stats.ratio(r["peak_memory_mb"], reference["peak_memory_mb"])
    return results


# ------------------------------------------------------------------------------ EMA


def ema_shapes(backbone: str, head: str, num_classes: int = 19) -> list[tuple[int, ...]]:
    """Parameter shapes of a segmentor, built on the meta device (no memory, no init time)."""
    from duda.models.build import build_segmentor

    with torch.device("meta"):
        model = build_segmentor(
            {"name": backbone, "pretrained": None, "drop_path_rate": 0.0},
            {"name": head},
            num_classes,
        )
    return [tuple(p.shape) for p in model.parameters()]


def measure_ema(s: SpeedSettings, device: torch.device, log: Callable) -> dict[str, Any]:
    """The project's `ema_update_` (one fused pass) against the textbook per-tensor loop
    (two passes, and on a GPU two kernel launches per tensor), alternated iteration by
    iteration so that a change of machine load hits both alike; and the floor set by the
    measured copy bandwidth."""
    from duda.uda.ema import ema_update_

    shapes = ema_shapes(s.ema_backbone, s.ema_head)
    teacher = [torch.rand(shape, device=device) for shape in shapes]
    student = [torch.rand(shape, device=device) for shape in shapes]
    params = sum(t.numel() for t in teacher)
    alpha = 0.999

    def fused() -> None:
        ema_update_(teacher, student, alpha)

    def loop() -> None:
        for t, p in zip(teacher, student, strict=True):
            t.mul_(alpha).add_(p, alpha=1 - alpha)

    for _ in range(2):
        fused()
        loop()
    fused_t, loop_t = [], []
    for _ in range(s.ema_iters):
        fused_t.append(time_once(fused, device))
        loop_t.append(time_once(loop, device))
    teacher.clear()  # free the lists before the copy buffers are allocated
    student.clear()
    _free(device)

    buffers = [torch.rand(params, device=device), torch.empty(params, device=device)]
    copy_t = time_calls(lambda b=buffers: b[1].copy_(b[0]), device, 2, max(10, s.ema_iters))
    nbytes = params * buffers[0].element_size()
    buffers.clear()
    _free(device)
    # the fastest copy: a floor is a best case, and load from other processes only slows it
    bandwidth = stats.copy_bandwidth(nbytes, min(copy_t))
    floor = stats.bandwidth_floor_s(params, bandwidth, bytes_per_param=4)
    fused_s, loop_s = stats.median(fused_t), stats.median(loop_t)
    ms = [f"{name} {t * 1e3:.1f} ms" for name, t in (("foreach", fused_s), ("loop", loop_s))]
    log(f"  ema: {', '.join(ms)}, bandwidth floor {floor * 1e3:.1f} ms")
    return {
        "network": f"{s.ema_backbone}+{s.ema_head}",
        "params": params,
        "tensors": len(shapes),
        "foreach_s": fused_s,
        "loop_s": loop_s,
        "speedup": stats.ratio(loop_s, fused_s),
        "copy_bandwidth_gb_s": bandwidth / 1e9,
        "floor_s": floor,
        "foreach_vs_floor": stats.ratio(fused_s, floor),
        # A CPU cache that allocates on write reads a line before writing it, so a copy_
        # moves three arrays, not two, and the floor above (issue 9's definition) can sit
        # above the time of the update itself; one copy_ of the parameters is then the floor.
        "copy_s": min(copy_t),
        "foreach_vs_copy": stats.ratio(fused_s, min(copy_t)),
        "foreach_times_s": [round(t, 6) for t in fused_t],
        "loop_times_s": [round(t, 6) for t in loop_t],
    }


# ------------------------------------------------------------------------------ data pipeline


def _scaled(hw: list[int] | None, size: tuple[int, int], real: tuple[int, int]) -> list[int] | None:
    """A config's resize (H, W) for frames of `size` (W, H) instead of the real `real` ones."""
    if hw is None:
        return None
    if tuple(size) == tuple(real):
        return [int(v) for v in hw]
    return [max(1, round(hw[0] * size[1] / real[1])), max(1, round(hw[1] * size[0] / real[0]))]


def measure_data(s: SpeedSettings, workdir: Path, log: Callable) -> dict[str, Any]:
    """Decode + augment throughput of one loader worker (one thread, as in a DataLoader
    worker) with the GTA5 → Cityscapes transforms, on frames of the real size generated by the
    project's synthetic generator."""
    import cv2

    from duda.data.build import build_domain
    from duda.data.synth import generate

    n = s.data_images
    generate(workdir / "src", source_count=n, target_count=0, val_count=0, size=s.data_source_size)
    generate(workdir / "tgt", source_count=0, target_count=n, val_count=0, size=s.data_target_size)
    crop = [s.data_crop, s.data_crop]
    cfg = compose(["dataset=gta_cs", f"paths.data_dir={workdir}"]).dataset
    src_cfg, tgt_cfg = cfg.source, cfg.target
    src_cfg.root, tgt_cfg.root = str(workdir / "src" / "gta"), str(workdir / "tgt" / "cityscapes")
    src_cfg.crop_hw = tgt_cfg.crop_hw = crop
    resize = {
        "source": _scaled(src_cfg.resize_hw, s.data_source_size, GTA_SIZE),
        "target": _scaled(tgt_cfg.resize_hw, s.data_target_size, CITYSCAPES_SIZE),
    }
    src_cfg.resize_hw, tgt_cfg.resize_hw = resize["source"], resize["target"]
    source = build_domain(src_cfg, seed=0, with_val=False).train
    target = build_domain(tgt_cfg, seed=1, with_val=False, train_labels=False).train

    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        out: dict[str, Any] = {}
        for name, dataset, size in (
            ("source", source, s.data_source_size),
            ("target", target, s.data_target_size),
        ):
            dataset[0]  # warm-up: first decode pays for lazy imports and caches
            times = [
                time_once(lambda d=dataset, i=i: d[i % len(d)], torch.device("cpu"))
                for i in range(s.data_iters)
            ]
            mean = sum(times) / len(times)
            out[name] = {
                "frame_size": list(size),
                "mean_s": mean,
                "median_s": stats.median(times),
                "images_per_s": 1.0 / mean,
            }
            log(f"  data {name}: {1.0 / mean:.1f} images/s per worker")
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
    out["crop"] = s.data_crop
    out["resize_hw"] = resize
    return out


def loader_demand(
    data: dict[str, Any], steps: dict[str, dict[str, Any]], batch: int, workers_per_loader: int
) -> dict[str, dict[str, float]]:
    """Per step kind: the loader workers needed to keep up (worker-seconds of decoding per
    step ÷ step time), against the workers the trainer starts (one loader per domain)."""
    out = {}
    for name, step in steps.items():
        uses_target = name != "source_only"
        work = batch * data["source"]["mean_s"] + (
            batch * data["target"]["mean_s"] if uses_target else 0
        )
        needed = stats.ratio(work, step["median_s"])
        available = workers_per_loader * (2 if uses_target else 1)
        out[name] = {
            "images_per_s": (batch * (2 if uses_target else 1)) / step["median_s"],
            "workers_needed": needed,
            "workers_available": available,
            "headroom": stats.ratio(available, needed),
        }
    return out


# ------------------------------------------------------------------------------ inference


def onnx_latency_s(model: torch.nn.Module, hw: tuple[int, int], iters: int, workdir: Path) -> float:
    """Median latency of the network as `duda.export` writes it (pixels in, logits at the
    input size out, normalisation inside), run by ONNX Runtime on the CPU with torch's thread
    count. The legacy exporter: about 20x quicker to write than dynamo, and the same graph
    for timing purposes."""
    from duda.deploy.formats import export_onnx, load_onnx
    from duda.deploy.measure import median_latency_ms, random_images
    from duda.deploy.student import DeployableStudent

    deployable = DeployableStudent(model.cpu().float()).eval()
    image = random_images((1, 3, *hw), seed=0)
    path = export_onnx(deployable, torch.from_numpy(image), workdir / "net.onnx", "legacy")
    runner = load_onnx(path, torch.get_num_threads())
    return median_latency_ms(runner, image, runs=iters, warmup=1) / 1000.0


def onnx_reason(device: torch.device) -> str | None:
    """Why ONNX Runtime latency is not measured here (None: it is)."""
    if device.type != "cpu":
        return "measured on CPU runs only (the CPU execution provider next to CPU eager)"
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    return None


def measure_inference(
    s: SpeedSettings, device: torch.device, log: Callable
) -> dict[str, dict[str, Any] | float]:
    """Full-resolution logits of one image (`Segmentor.predict`), PyTorch eager, batch 1; on
    CUDA also under bf16 autocast."""
    from duda.models.build import build_model
    from duda.models.summary import count_flops

    h, w = s.infer_hw
    out: dict[str, Any] = {"size_hw": [h, w]}
    cfgs = step_configs(s)  # the networks the training steps measure, head widths included
    for role, backbone, head, cfg in (
        ("student", s.small, s.small_head, cfgs["uda_small"]),
        ("large", s.large, s.large_head, cfgs["uda_large"]),
    ):
        classes = cfg.dataset.num_classes
        with torch.device("meta"):
            flops = count_flops(build_model(cfg.model, classes).eval(), (h, w))
        model = build_model(cfg.model, classes).to(device).eval()
        x = torch.randn(1, 3, h, w, device=device)
        with torch.inference_mode():
            times = time_calls(lambda m=model, x=x: m.predict(x), device, 1, s.infer_iters)
            entry = {
                "network": f"{backbone}+{head}",
                "latency_s": stats.median(times),
                "gflops": flops / 1e9,
            }
            if device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    bf16 = time_calls(lambda m=model, x=x: m.predict(x), device, 3, s.infer_iters)
                entry["bf16_latency_s"] = stats.median(bf16)
                entry["bf16_images_per_s"] = 1.0 / entry["bf16_latency_s"]
        if onnx_reason(device) is None:
            with tempfile.TemporaryDirectory(prefix="duda_bench_onnx_") as tmp:
                entry["onnx_latency_s"] = onnx_latency_s(model, (h, w), s.infer_iters, Path(tmp))
        out[role] = entry
        onnx = (
            f", ONNX Runtime {entry['onnx_latency_s'] * 1e3:.1f} ms"
            if "onnx_latency_s" in entry
            else ""
        )
        log(f"  inference {role}: {entry['latency_s'] * 1e3:.1f} ms{onnx}")
        del model, x
        _free(device)
    out["student_vs_large"] = stats.ratio(out["student"]["latency_s"], out["large"]["latency_s"])
    reason = onnx_reason(device)
    out["onnxruntime"] = {"measured": reason is None, "reason": reason}
    return out


# ------------------------------------------------------------------------------ the run


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets, with the measured value and whether it is met."""
    on_gpu = report["machine"]["device"] == "cuda"
    checks = {
        "duda_stage1_vs_uda_large": ("<=", 1.35),
        "duda_stage2_vs_uda_large": ("<=", 0.5),
        "ema_foreach_speedup": (">=", 10.0 if on_gpu else 1.5),
    }
    out = {}
    for key, (op, bound) in checks.items():
        value = report.get(key)
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        out[key] = {"target": f"{op} {bound}", "value": value, "met": met}
    return out


def run_speed(
    s: SpeedSettings, out_dir: Path, log: Callable = print, command: str | None = None
) -> dict[str, Any]:
    """Measure everything not skipped; write `speed.json` and `speed.md` into `out_dir`."""
    s.check()
    if s.threads:
        torch.set_num_threads(s.threads)
    device = resolve_device(s.device, "--device")
    precision = resolve_precision(s.precision, device)
    amp_dtype = torch.bfloat16 if precision == "bf16" else None
    torch.manual_seed(0)
    machine = describe_machine(device)
    log(f"speed benchmark on {describe_line(machine)}")
    report: dict[str, Any] = {
        "machine": machine,
        "settings": {**asdict(s), "precision": precision},
        "command": command,
    }
    started = time.perf_counter()
    if "steps" not in s.skip:
        log(f"training steps ({s.large}+{s.large_head} vs {s.small}+{s.small_head}, {s.crop}px):")
        steps = measure_steps(s, device, amp_dtype, log)
        report["steps"] = steps
        report["duda_stage1_vs_uda_large"] = steps["duda_stage1"]["time_vs_uda_large"]
        report["duda_stage2_vs_uda_large"] = steps["duda_stage2"]["time_vs_uda_large"]
    if "ema" not in s.skip:
        report["ema"] = measure_ema(s, device, log)
        report["ema_foreach_speedup"] = report["ema"]["speedup"]
    if "data" not in s.skip:
        with tempfile.TemporaryDirectory(prefix="duda_bench_data_") as tmp:
            report["data"] = measure_data(s, Path(tmp), log)
        if "steps" in report:
            workers = int(compose(["trainer=default"]).trainer.num_workers)
            report["data"]["demand"] = loader_demand(
                report["data"], report["steps"], s.batch, workers
            )
    if "inference" not in s.skip:
        report["inference"] = measure_inference(s, device, log)
    report["targets"] = targets(report)
    report["machine"]["load_average_end"] = describe_machine(device)["load_average"]
    report["seconds"] = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "speed.json").write_text(json.dumps(stats.json_safe(report), indent=2) + "\n")
    (out_dir / "speed.md").write_text(speed_markdown(report))
    log(f"wrote {out_dir / 'speed.json'} and {out_dir / 'speed.md'} ({report['seconds']:.0f} s)")
    return report


# ------------------------------------------------------------------------------ report


STEP_LABELS = {
    "source_only": "source-only, small",
    "uda_small": "base UDA (DAFormer), small",
    "uda_large": "base UDA (DAFormer), large",
    "duda_stage1": "DUDA stage 1 (3 networks)",
    "duda_stage2": "DUDA stage 2 (student)",
}


def speed_markdown(report: dict[str, Any]) -> str:
    """The tables of speed.md (and of the README's Benchmarks section)."""
    s = report["settings"]
    parts = [f"Measured {describe_line(report['machine'])}.\n"]
    if "steps" in report:
        parts.append(
            f"\nTraining step, {s['batch']} + {s['batch']} crops of {s['crop']}x{s['crop']}, "
            f"{s['precision']}, median of {s['iters']} after {s['warmup']} warm-up, the methods "
            f"stepped in turn; large = {s['large']}+{s['large_head']}, small = "
            f"{s['small']}+{s['small_head']}:\n\n"
        )
        rows = []
        for name, r in report["steps"].items():
            rows.append(
                [
                    STEP_LABELS[name],
                    stats.fmt(r["median_s"] * 1e3, 1),
                    stats.fmt(r["time_vs_uda_large"], 2, "×"),
                    stats.fmt(r["peak_memory_mb"], 0),
                    stats.fmt(r["memory_vs_uda_large"], 2, "×"),
                    stats.fmt(r.get("gflops"), 1),
                    stats.fmt(r.get("peak_bf16_fraction"), 3),
                ]
            )
        parts.append(
            stats.markdown_table(
                [
                    "step",
                    "ms",
                    "time vs large",
                    "peak MB",
                    "memory vs large",
                    "GFLOP",
                    "of bf16 peak",
                ],
                rows,
            )
        )
    if "targets" in report:
        rows = [
            [
                k,
                t["target"],
                stats.fmt(t["value"], 2),
                {True: "yes", False: "**no**"}.get(t["met"], "–"),
            ]
            for k, t in report["targets"].items()
        ]
        parts.append("\nTargets of issue 9:\n\n")
        parts.append(stats.markdown_table(["figure", "target", "measured", "met"], rows))
    if "ema" in report:
        e = report["ema"]
        parts.append(
            f"\nEMA update of {e['network']} ({e['params'] / 1e6:.1f} M parameters in "
            f"{e['tensors']} tensors), median of {s['ema_iters']}:\n\n"
        )
        parts.append(
            stats.markdown_table(
                ["implementation", "ms", "vs bandwidth floor"],
                [
                    [
                        "`ema_update_` (`torch._foreach_lerp_`)",
                        stats.fmt(e["foreach_s"] * 1e3, 1),
                        stats.fmt(e["foreach_vs_floor"], 2, "×"),
                    ],
                    [
                        "per-tensor `mul_().add_()` loop",
                        stats.fmt(e["loop_s"] * 1e3, 1),
                        stats.fmt(e["loop_s"] / e["floor_s"], 2, "×"),
                    ],
                    [
                        f"floor: 3 × 4 B × params at {e['copy_bandwidth_gb_s']:.1f} GB/s (copy_)",
                        stats.fmt(e["floor_s"] * 1e3, 1),
                        "1.00×",
                    ],
                    [
                        "one `copy_` of the parameters (3 arrays with write-allocate)",
                        stats.fmt(e.get("copy_s", math.nan) * 1e3, 1),
                        stats.fmt(stats.ratio(e.get("copy_s", math.nan), e["floor_s"]), 2, "×"),
                    ],
                ],
            )
        )
        parts.append(f"\nforeach speed-up over the loop: {stats.fmt(e['speedup'], 2, '×')}\n")
    if "data" in report:
        d = report["data"]
        parts.append(
            f"\nData pipeline, one worker (1 thread), decode + augment to {d['crop']}px crops:\n\n"
        )
        rows = [
            [
                f"{name} ({d[name]['frame_size'][0]}x{d[name]['frame_size'][1]} PNG)",
                stats.fmt(d[name]["images_per_s"], 1),
                stats.fmt(d[name]["mean_s"] * 1e3, 1),
            ]
            for name in ("source", "target")
        ]
        parts.append(stats.markdown_table(["frames", "images/s", "ms/image"], rows))
        if "demand" in d:
            rows = [
                [
                    STEP_LABELS[name],
                    stats.fmt(v["images_per_s"], 1),
                    stats.fmt(v["workers_needed"], 2),
                    str(v["workers_available"]),
                ]
                for name, v in d["demand"].items()
            ]
            parts.append(
                f"\nWhat the steps above consume (steps at {s['crop']}px, "
                f"data at {d['crop']}px):\n\n"
            )
            parts.append(
                stats.markdown_table(
                    ["step", "images/s consumed", "workers needed", "workers started"], rows
                )
            )
    if "inference" in report:
        inf = report["inference"]
        h, w = inf["size_hw"]
        parts.append(f"\nInference, one {h}x{w} image, PyTorch eager fp32:\n\n")
        rows = []
        for role in ("student", "large"):
            r = inf[role]
            onnx = r.get("onnx_latency_s")
            rows.append(
                [
                    f"{role} ({r['network']})",
                    stats.fmt(r["latency_s"] * 1e3, 1),
                    stats.fmt(onnx * 1e3 if onnx else None, 1),
                    stats.fmt(r["gflops"], 1),
                    stats.fmt(r.get("bf16_images_per_s"), 1),
                ]
            )
        header = ["network", "eager ms", "ONNX Runtime ms", "GFLOP", "bf16 images/s"]
        parts.append(stats.markdown_table(header, rows))
        reason = inf["onnxruntime"].get("reason")
        parts.append(
            f"\nstudent / large latency (eager): {stats.fmt(inf['student_vs_large'], 3)}"
            + (f"; ONNX Runtime: {reason}" if reason else "")
            + ". ONNX Runtime runs the graph `duda.export` writes (normalisation and upsampling "
            "inside), legacy exporter, CPU execution provider, same thread count.\n"
        )
    return "".join(parts)
