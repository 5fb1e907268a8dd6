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


# SYNTHIA-RAND-CITYSCAPES class ID (last channel of GT/LABELS/*.png read with OpenCV) -> train ID,
# from the dataset's README as the reference converter maps it. 16 (terrain), 18 (truck) and
# 20 (train) are listed there but never occur, which is why SYNTHIA is scored on 16 classes.
SYNTHIA_TO_TRAIN: dict[int, int] = {
    3: 0,
    4: 1,
    2: 2,
    21: 3,
    5: 4,
    7: 5,
    15: 6,
    9: 7,
    6: 8,
    16: 9,
    1: 10,
    10: 11,
    17: 12,
    8: 13,
    18: 14,
    19: 15,
    20: 16,
    12: 17,
    11: 18,
}
SYNTHIA_MAX_ID = 22  # 0 void ... 22 lanemarking; anything above is not a SYNTHIA class

# Class subsets scored by the benchmarks (reference sheet §11/§13). SYNTHIA lacks terrain, truck
# and train (mIoU16); mIoU13 also drops wall, fence and pole. Each is a mean over its own
# classes, never a rescaled 19-class mean.
CLASS_SUBSETS: dict[str, tuple[int, ...]] = {
    "mIoU19": tuple(range(19)),
    "mIoU16": tuple(c for c in range(19) if c not in (9, 14, 16)),
    "mIoU13": tuple(c for c in range(19) if c not in (3, 4, 5, 9, 14, 16)),
}

_CITYSCAPES_TABLE: tuple[dict[int, int], str] | None = None


def cityscapes_label_table() -> tuple[dict[int, int], str]:
    """(label ID -> train ID for every non-negative Cityscapes ID, where the table came from).

    The official definitions of `cityscapesscripts.helpers.labels` are used when the package is
    importable (it is a dev dependency, and heavy for a runtime one: matplotlib, pyquaternion,
    ...). Without it the copy above is used, which the test suite checks against the package;
    `duda.data.prepare` prints which one it used.
    """
    global _CITYSCAPES_TABLE
    if _CITYSCAPES_TABLE is None:
        try:
            from cityscapesscripts.helpers.labels import labels
        except ImportError:
            table = {i: LABEL_TO_TRAIN.get(i, IGNORE_INDEX) for i in range(34)}
            source = (
                "duda.data.classes (cityscapesscripts is not installed; this copy matches its "
                "table, `pip install cityscapesscripts` to use the official definitions)"
            )
        else:
            table = {
                lab.id: lab.trainId if 0 <= lab.trainId < 19 else IGNORE_INDEX
                for lab in labels
                if lab.id >= 0
            }
            source = "cityscapesscripts.helpers.labels"
        _CITYSCAPES_TABLE = (table, source)
    return _CITYSCAPES_TABLE


def lookup_tables(encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """(train-ID LUT, known-ID mask) indexed by the stored value, for one label encoding.

    `label_ids`: Cityscapes/GTA5 label IDs (uint8). `synthia`: SYNTHIA class IDs (uint16 channel).
    `train_ids`: already train IDs (ACDC, Dark Zurich, converted files). A stored value whose
    mask entry is False is not an ID of that encoding: the file is bad, not merely ignored.
    """
    if encoding == "label_ids":
        table, size = cityscapes_label_table()[0], 256
    elif encoding == "synthia":
        table, size = SYNTHIA_TO_TRAIN, 65536
        table = {i: table.get(i, IGNORE_INDEX) for i in range(SYNTHIA_MAX_ID + 1)}
    elif encoding == "train_ids":
        table, size = {i: i for i in (*range(19), IGNORE_INDEX)}, 256
    else:
        raise ValueError(f"unknown label encoding {encoding!r}")
    lut = np.full(size, IGNORE_INDEX, dtype=np.uint8)
    known = np.zeros(size, dtype=bool)
    for stored, train_id in table.items():
        lut[stored] = train_id
        known[stored] = True
    return lut, known
