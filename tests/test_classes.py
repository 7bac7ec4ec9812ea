import numpy as np
import pytest

from ferlab import classes as C


def test_remap_by_name_between_datasets():
    # RAF-DB 0 = surprise, 3 = happiness, 6 = neutral -> FERPlus order
    out = C.remap([0, 3, 6, -1], C.RAFDB, C.FERPLUS7)
    assert out.tolist() == [C.FERPLUS7.index("surprise"), 1, 0, -1]


def test_contempt_has_no_place_in_seven_classes():
    assert C.remap([7], C.FERPLUS8, C.FERPLUS7).tolist() == [-1]


def test_fer2013_order_round_trips():
    labels = np.arange(7)
    back = C.remap(C.remap(labels, C.FER2013, C.FERPLUS7), C.FERPLUS7, C.FER2013)
    assert back.tolist() == labels.tolist()


def test_aliases():
    assert C.canonical_name("Happy") == "happiness"
    assert C.canonical_name("angry") == "anger"
    with pytest.raises(KeyError, match="unknown emotion"):
        C.canonical_name("bored")
