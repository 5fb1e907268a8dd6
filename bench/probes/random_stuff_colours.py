"""Probe (not part of the package): the embedded benchmark with random stuff colours.

Why: to test whether more appearance variety per class ("harder scenes") widens the lead of
MiT-B2 over MiT-B0 (issue 9 asks for >= 3 mIoU). Every stuff part (building, wall, road, sky,
vegetation, ...) gets a random hue and saturation, keeping the palette's brightness, so colour no
longer names the class and texture, shape and context must. Things keep their per-instance
colours. It patches the palette lookup of `duda.data.synth_style` for this process only and
writes the `synth_day` layout with data seed 0, e.g.

    python bench/probes/random_stuff_colours.py outputs/probe/data_variety/synth_day
    python -m duda.train +experiment=synth_daformer_mit_b0 \
        paths.data_dir=outputs/probe/data_variety dataset.synth.seed=0 seed=0 \
        trainer.threads=1 trainer.precision=bf16

(the training finds the benchmark complete and does not regenerate it). Result in the README's
probe table ("random stuff colours").
"""

import colorsys
import sys
from pathlib import Path

import numpy as np

from duda.data import synth_style
from duda.data.synth import generate

_palette_color = synth_style._class_color


def _random_color(palette: dict, material: int, variant: float) -> np.ndarray:
    """A random hue and saturation, the palette's brightness; seeded by the part's variant."""
    _, _, value = colorsys.rgb_to_hsv(*(_palette_color(palette, material, variant) / 255.0))
    rng = np.random.default_rng([int(material), int(variant * 2**31)])
    hue, saturation = rng.random(), rng.uniform(0.1, 0.6)
    value = float(np.clip(value * rng.uniform(0.8, 1.2), 0.05, 1.0))
    return np.asarray(colorsys.hsv_to_rgb(hue, saturation, value), np.float32) * 255.0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/probes/random_stuff_colours.py OUT_DIR  (…/synth_day)")
    synth_style._class_color = _random_color
    generate(Path(sys.argv[1]), seed=0, workers=2)
