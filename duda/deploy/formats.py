"""Writing the student as ONNX or TorchScript, and loading each back as `pixels -> logits`.

Both files take a dynamic batch, height and width: the MiT/SegFormer graph has no fixed-size
parameter, so one file serves any resolution (a multiple of 32 avoids padding artefacts, as in
PyTorch). The loaders return plain callables on numpy arrays, so that parity checks, latency
and `duda.predict` treat every format alike.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from duda.deploy.student import INPUT_NAME, OUTPUT_NAME

Runner = Callable[[np.ndarray], np.ndarray]  # float32 NCHW RGB 0-255 -> float32 logits
EXPORTERS = ("dynamo", "legacy")
DEFAULT_OPSET = 18


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
) -> Path:
    """`dynamo`: torch.export-based, torch's default and maintained exporter (needs onnxscript).
    `legacy`: the TorchScript-based exporter, about 20x quicker to export, deprecated by torch."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    common = dict(
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset, verbose=False
    )
    with warnings.catch_warnings():
        _quiet_tracing()
        if exporter == "dynamo":
            dim = torch.export.Dim.DYNAMIC
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                dynamic_shapes={INPUT_NAME: {0: dim, 2: dim, 3: dim}},
                **common,
            )
        else:
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                **common,
            )
    return path


def load_onnx(path: str | Path, threads: int | None = None) -> Runner:
    """An ONNX Runtime CPU session; `threads` as torch's so that latencies compare fairly."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda image: session.run([OUTPUT_NAME], {INPUT_NAME: image})[0]


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """`torch.jit.trace`: the student has no data-dependent control flow, so a trace is exact
    and, as it records shape arithmetic, follows other input sizes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode():
        _quiet_tracing()
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return path


def load_torchscript(path: str | Path) -> Runner:
    with warnings.catch_warnings():
        _quiet_tracing()
        module = torch.jit.load(str(path), map_location="cpu").eval()
    return _numpy_runner(module)


def torch_runner(model: nn.Module) -> Runner:
    return _numpy_runner(model)


def _numpy_runner(module: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
    def run(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(image)).numpy()

    return run


def _quiet_tracing() -> None:
    """Silence what tracing always says about this network and is not a problem here: the
    head's `if feature.shape != size` becomes a constant (its outcome is the same for every
    input of 8 pixels or more, the stage strides being fixed; the parity check at a second
    size would catch a head where it is not), and torch's notice that TorchScript/the legacy ONNX
    exporter are deprecated (the README says so once)."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
