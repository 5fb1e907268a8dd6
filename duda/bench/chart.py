"""Grouped bar chart of per-class IoU, one bar per method and class.

matplotlib draws it when installed (it is not a dependency of the package); otherwise a plain
PIL drawing with the same content, so a fresh install still gets its PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

COLORS = ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def class_bar_chart(per_method: dict[str, dict[str, float]], path: Path, title: str = "") -> None:
    """`per_method`: label -> {class name: IoU in %}; NaN (class absent) is drawn as no bar."""
    classes = list(next(iter(per_method.values())))
    try:
        import matplotlib
    except ImportError:
        _pil_chart(per_method, classes, path, title)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_method)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(10, 0.7 * len(classes) * max(1, n / 3)), 4.5))
    for i, (label, values) in enumerate(per_method.items()):
        xs = [c + (i - (n - 1) / 2) * width for c in range(len(classes))]
        ys = [0.0 if math.isnan(values.get(c, math.nan)) else values[c] for c in classes]
        ax.bar(xs, ys, width, label=label, color=COLORS[i % len(COLORS)])
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(n, 3))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _hex(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _pil_chart(
    per_method: dict[str, dict[str, float]], classes: list[str], path: Path, title: str
) -> None:
    from PIL import Image, ImageDraw

    n = len(per_method)
    group = 12 * n + 16
    left, top, bottom, plot_h = 40, 30 + 14 * n, 90, 300
    width = left + group * len(classes) + 20
    img = Image.new("RGB", (width, top + plot_h + bottom), "white")
    draw = ImageDraw.Draw(img)
    draw.text((left, 5), title, fill="black")
    for i, label in enumerate(per_method):
        draw.rectangle((left, 22 + 14 * i, left + 10, 32 + 14 * i), fill=_hex(COLORS[i % 8]))
        draw.text((left + 14, 21 + 14 * i), label, fill="black")
    base = top + plot_h
    for tick in range(0, 101, 20):
        y = base - plot_h * tick / 100
        draw.line((left, y, width - 20, y), fill=(220, 220, 220))
        draw.text((5, y - 6), str(tick), fill="black")
    for c, name in enumerate(classes):
        x0 = left + c * group + 8
        for i, values in enumerate(per_method.values()):
            value = values.get(name, math.nan)
            if not math.isnan(value):
                y = base - plot_h * min(max(value, 0.0), 100.0) / 100
                draw.rectangle((x0 + 12 * i, y, x0 + 12 * i + 10, base), fill=_hex(COLORS[i % 8]))
        draw.text((x0, base + 4 + 12 * (c % 2)), name[:9], fill="black")
    img.save(path)
