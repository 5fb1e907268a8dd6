"""Write a run's student as ONNX and/or TorchScript, check it against PyTorch, time it.

    python -m duda.export checkpoint=outputs/runs/<run>/model_final.pt format=onnx
        [out=DIR] [size=512x1024] [batch=1] [tolerance=1e-4] [runs=10] [threads=N]
        [exporter=dynamo|legacy] [opset=18]

The exported network takes float32 RGB pixels in 0-255, N x 3 x H x W with any N, H and W, and
returns N x C x H x W logits (ImageNet normalisation and the upsampling to the input size are
part of the graph). Parity: on random images of `batch` x `size` and of 2 x half `size` (the
second checks the dynamic axes), the largest absolute logit difference to PyTorch must be at
most `tolerance`, otherwise the command exits with 1. Latency: median of `runs` forward passes
at `batch` x `size` on the CPU, for PyTorch eager and each written format. Everything is also
written to `<out>/export.json`; `out` defaults to `<checkpoint folder>/export`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from duda.deploy import args as A
from duda.deploy import formats
from duda.deploy.measure import DEFAULT_TOLERANCE, Parity, median_latency_ms, parity, random_images
from duda.deploy.student import INPUT_NAME, OUTPUT_NAME, load_student

FORMATS = ("onnx", "torchscript", "all")
FILES = {"onnx": "student.onnx", "torchscript": "student.torchscript.pt"}
EXIT_PARITY = 1

OPTIONS = (
    A.Option("checkpoint", A.path, required=True, metavar="PATH", help="model_final.pt of a run"),
    A.Option("format", A.choice(*FORMATS), "all", "FMT", "onnx, torchscript or all (both)"),
    A.Option("out", A.optional(A.path), None, "DIR", "output folder (none: export/ beside it)"),
    A.Option("size", A.size_hw, (512, 1024), "HxW", "export and check size, height x width"),
    A.Option("batch", A.positive_int, 1, "N", "batch of the parity check and the latency"),
    A.Option("tolerance", A.non_negative_float, DEFAULT_TOLERANCE, "X", "max |logit difference|"),
    A.Option("runs", A.positive_int, 10, "N", "timed forward passes per backend"),
    A.Option("threads", A.optional(A.positive_int), None, "N", "CPU threads, torch and ORT"),
    A.Option("exporter", A.choice(*formats.EXPORTERS), "dynamo", "NAME", "ONNX exporter"),
    A.Option("opset", A.positive_int, formats.DEFAULT_OPSET, "N", "ONNX opset"),
)


def check_sizes(batch: int, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The export size, and a second batch and size that a file with fixed axes would fail."""
    half = (max(32, size[0] // 2), max(32, size[1] // 2))
    return [(batch, 3, *size), (2 if batch != 2 else 3, 3, *half)]


def export(options: dict[str, Any]) -> dict[str, Any]:
    """Write the requested formats and measure them; the report that `export.json` holds."""
    checkpoint: Path = options["checkpoint"]
    out: Path = options["out"] or checkpoint.parent / "export"
    if options["threads"]:
        torch.set_num_threads(options["threads"])
    student, cfg = load_student(checkpoint)
    wanted = ["onnx", "torchscript"] if options["format"] == "all" else [options["format"]]
    shapes = check_sizes(options["batch"], options["size"])
    example = torch.from_numpy(random_images(shapes[0], seed=0))
    reference = formats.torch_runner(student)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "model": f"{cfg.model.backbone.name}+{cfg.model.head.name}",
        "input": {"name": INPUT_NAME, "layout": "N x 3 x H x W float32 RGB 0-255"},
        "output": {"name": OUTPUT_NAME, "layout": "N x C x H x W float32 logits"},
        "size": list(options["size"]),
        "batch": options["batch"],
        "tolerance": options["tolerance"],
        "threads": torch.get_num_threads(),
        "pytorch": {"latency_ms": median_latency_ms(reference, example.numpy(), options["runs"])},
    }
    for fmt in wanted:
        path = out / FILES[fmt]
        if fmt == "onnx":
            formats.export_onnx(student, example, path, options["exporter"], options["opset"])
            runner = formats.load_onnx(path, torch.get_num_threads())
        else:
            formats.export_torchscript(student, example, path)
            runner = formats.load_torchscript(path)
        # seeds other than the example's: a trace must not only reproduce its own input
        checks = [
            parity(reference, runner, random_images(shape, seed=1 + i), options["tolerance"])
            for i, shape in enumerate(shapes)
        ]
        report[fmt] = {
            "path": str(path),
            "parity": [_parity_json(c) for c in checks],
            "passed": all(c.passed for c in checks),
            "latency_ms": median_latency_ms(runner, example.numpy(), options["runs"]),
        }
        if fmt == "onnx":
            report[fmt]["exporter"] = options["exporter"]
            report[fmt]["opset"] = options["opset"]
    report["passed"] = all(report[fmt]["passed"] for fmt in wanted)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _parity_json(p: Parity) -> dict[str, Any]:
    return {
        "shape": list(p.shape),
        "max_abs_diff": p.max_abs_diff,
        "argmax_agreement": p.argmax_agreement,
        "passed": p.passed,
    }


def summary(report: dict[str, Any]) -> str:
    h, w = report["size"]
    lines = [
        f"{report['model']} at {report['batch']}x3x{h}x{w}, {report['threads']} CPU thread(s), "
        f"tolerance {report['tolerance']:g}",
        f"  {'format':<12} {'max |diff|':>12} {'argmax agree':>13} {'latency ms':>11}  file",
        f"  {'pytorch':<12} {'':>12} {'':>13} {report['pytorch']['latency_ms']:>11.1f}",
    ]
    for fmt in ("onnx", "torchscript"):
        if fmt not in report:
            continue
        r = report[fmt]
        worst = max(p["max_abs_diff"] for p in r["parity"])
        agree = min(p["argmax_agreement"] for p in r["parity"])
        mark = "" if r["passed"] else "  PARITY FAILED"
        lines.append(
            f"  {fmt:<12} {worst:>12.3g} {agree:>12.4%} {r['latency_ms']:>11.1f}  {r['path']}{mark}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(A.usage("duda.export", __doc__, OPTIONS))
        return 0
    try:
        options = A.parse_args(argv, OPTIONS)
        report = export(options)
    except (A.UsageError, FileNotFoundError, ValueError) as err:
        print(f"export: error: {err}", file=sys.stderr)
        return A.EXIT_USAGE
    print(summary(report))
    if not report["passed"]:
        failed = [f for f in ("onnx", "torchscript") if f in report and not report[f]["passed"]]
        print(
            f"export: error: parity failed for {', '.join(failed)}: the exported student's logits "
            f"differ from PyTorch's by more than tolerance={report['tolerance']:g} "
            f"(details in {Path(report[failed[0]]['path']).parent / 'export.json'})",
            file=sys.stderr,
        )
        return EXIT_PARITY
    return 0


if __name__ == "__main__":
    sys.exit(main())
