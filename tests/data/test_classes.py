"""The class table against the official Cityscapes definitions (an independent source)."""

import numpy as np

from duda.data.classes import CLASS_NAMES, IGNORE_INDEX, LABEL_TO_TRAIN, PALETTE, label_to_train_lut


def test_table_matches_cityscapesscripts():
    from cityscapesscripts.helpers.labels import labels

    official = {lab.id: lab.trainId for lab in labels if lab.id >= 0}
    lut = label_to_train_lut()
    for label_id, train_id in official.items():
        expected = train_id if 0 <= train_id < 19 else IGNORE_INDEX
        assert lut[label_id] == expected, label_id
    names = {lab.trainId: lab.name for lab in labels if 0 <= lab.trainId < 19}
    assert tuple(names[i] for i in range(19)) == CLASS_NAMES
    colors = {lab.trainId: lab.color for lab in labels if 0 <= lab.trainId < 19}
    assert tuple(tuple(colors[i]) for i in range(19)) == PALETTE


def test_lut_maps_unknown_ids_to_ignore():
    lut = label_to_train_lut()
    ids = np.array([0, 1, 7, 33, 34, 255], np.uint8)
    assert lut[ids].tolist() == [255, 255, 0, 18, 255, 255]
    assert len(LABEL_TO_TRAIN) == 19
