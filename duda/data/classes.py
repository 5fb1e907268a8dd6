"""The Cityscapes class definitions every benchmark in this project is scored on.

GTA5 and SYNTHIA are converted to the 19 Cityscapes training classes, so one table serves all
datasets. The numbers are the official ones of `cityscapesscripts.helpers.labels`; the test suite
checks them against that package instead of trusting this copy.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255

CLASS_NAMES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

# Cityscapes label ID -> train ID for the 19 evaluated classes; every other ID is ignored.
LABEL_TO_TRAIN: dict[int, int] = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
TRAIN_TO_LABEL: dict[int, int] = {t: lab for lab, t in LABEL_TO_TRAIN.items()}

# Official colours by train ID (RGB), used for palette PNGs and W&B masks.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)


def label_to_train_lut() -> np.ndarray:
    """A 256-entry lookup table, so converting a label map is one fancy-indexing pass."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN.items():
        lut[label_id] = train_id
    return lut
