"""Parity and latency of a deployed format against the PyTorch network it came from."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# fp32 logits of ONNX Runtime and PyTorch differ by summation order only: 6.7e-6 at most for
# a trained MiT-B0 + SegFormer at 512x1024 (README). 1e-4 leaves room for larger networks and
# is still far below any difference that changes a prediction other than a near-exact tie.
DEFAULT_TOLERANCE = 1e-4


@dataclass
class Parity:
    shape: tuple[int, ...]
    max_abs_diff: float
    argmax_agreement: float  # share of pixels whose predicted class is the same
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def random_images(shape: Sequence[int], seed: int) -> np.ndarray:
    """Uniform 0-255 RGB float32: the deployed input range, with every pixel value possible."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 255.0, size=tuple(shape)).astype(np.float32)


def parity(
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Parity:
    expected, got = reference(image), candidate(image)
    if got.shape != expected.shape:  # e.g. a file whose axes were fixed at export
        return Parity(tuple(image.shape), float("inf"), 0.0, tolerance)
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    # nan anywhere is a failure, never a pass: max() of an array with nan is nan, and nan > tol
    # is False, so it is mapped to inf explicitly
    worst = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    return Parity(tuple(image.shape), worst, agreement, tolerance)


def median_latency_ms(
    run: Callable[[np.ndarray], object], image: np.ndarray, runs: int = 10, warmup: int = 2
) -> float:
    """Median wall time of `runs` calls after `warmup` untimed ones (allocator, lazy init)."""
    for _ in range(warmup):
        run(image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(image)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
