"""The arithmetic of the benchmark reports, kept pure so that tests can check it by hand."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """Median of the measured times: robust to the odd iteration slowed by another process."""
    if not values:
        raise ValueError("median of no measurements")
    return float(statistics.median(values))


def ratio(value: float, reference: float) -> float:
    """`value / reference`; NaN when the reference is zero or missing (nothing to compare)."""
    if reference is None or value is None or reference == 0 or math.isnan(reference):
        return float("nan")
    return value / reference


def finite(values: Sequence[float | None]) -> list[float]:
    """The values that exist and are numbers (failed runs are None, absent classes NaN)."""
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1) over seeds; std 0 for one value.

    Sample, not population, standard deviation: the seeds are a sample of the runs one would
    get, and with three seeds the difference is a factor √1.5.
    """
    xs = finite(values)
    if not xs:
        return float("nan"), float("nan")
    if len(xs) == 1:
        return xs[0], 0.0
    return float(statistics.fmean(xs)), float(statistics.stdev(xs))


def gap_closed(value: float, source_only: float, oracle: float) -> float:
    """Share of the source-only → oracle gap a method closes: (x − src) / (oracle − src).

    0 is no better than never adapting, 1 is as good as training on labelled target data.
    NaN when the oracle does not beat source-only (the benchmark then measures nothing).
    """
    gap = oracle - source_only
    if not gap > 0:
        return float("nan")
    return (value - source_only) / gap


def bandwidth_floor_s(params: int, bandwidth_bytes_per_s: float, bytes_per_param: int = 4) -> float:
    """Lowest possible time of one EMA update θ_T ← lerp(θ_T, θ_S): read two arrays, write
    one, so 3 × bytes × parameters moved at the machine's copy bandwidth."""
    return 3 * bytes_per_param * params / bandwidth_bytes_per_s


def copy_bandwidth(nbytes: int, seconds: float) -> float:
    """Bytes per second of `dst.copy_(src)` on an `nbytes` tensor: it reads and writes each
    byte once, so 2 × nbytes move."""
    return 2 * nbytes / seconds


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """A table cell: fixed digits, an en dash for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}{suffix}"


def fmt_mean_std(values: Sequence[float | None], digits: int = 1) -> str:
    """`mean ± std`; a single value alone (one seed has no spread to show)."""
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "–"
    if len(finite(values)) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; the first column left-aligned, the others right-aligned."""
    align = [":--"] + ["--:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(headers)}")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def json_safe(obj: object) -> object:
    """NaN and ±inf become None: strict JSON has no NaN, and a missing figure is what it is."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
