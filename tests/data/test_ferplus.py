import csv

import numpy as np
import pytest

from ferlab import classes as C
from ferlab.data import build_dataset
from ferlab.data.ferplus import ferplus, majority_labels

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("split,count", [("train", 28558), ("val", 3579), ("test", 3573)])
@pytest.mark.slow
def test_split_sizes(ferplus_root, split, count):
    ds = build_dataset("ferplus", ferplus_root, split, drop_unlabeled=False)
    assert len(ds) == count
    # majority mode keeps the rows with an FERPlus majority among the 7 basic emotions
    mv = build_dataset("ferplus", ferplus_root, split)
    assert 0.85 * count < len(mv) < count and (mv.labels >= 0).all()


def test_fer2013_mode_matches_label_table(ferplus_root):
    ds = build_dataset("ferplus", ferplus_root, "train", label_mode="fer2013", drop_unlabeled=False)
    table = {}
    with open(ferplus_root / "fer2013_labels.csv") as f:
        for row in csv.DictReader(f):
            if row["usage"] == "Training" and row["image_name"] and row["status"] != "no_pixels":
                table[row["image_name"]] = int(row["fer2013_emotion"])
    names = ds.meta["names"]
    expected = C.remap([table[n] for n in names], C.FER2013, C.FERPLUS7)
    assert len(names) == 28558
    assert np.array_equal(ds.labels, expected)


def test_real_noise_rate_fer2013_vs_ferplus_majority(ferplus_root):
    """The data README: the FER2013 label disagrees with the FERPlus majority on 34.2%
    of the Training images with a unique majority among the 7 basic emotions."""
    ds = build_dataset("ferplus", ferplus_root, "train", label_mode="fer2013", majority_rule="plurality")
    ok = (ds.labels >= 0) & (ds.clean_labels >= 0)
    rate = float((ds.labels[ok] != ds.clean_labels[ok]).mean())
    assert abs(ok.sum() - 26776) < 200
    assert abs(rate - 0.342) <= 0.005, rate


def test_majority_rules_by_hand():
    votes = np.array([
        [6, 2, 2, 0, 0, 0, 0, 0, 0, 0],  # clear neutral
        [4, 4, 1, 0, 0, 0, 0, 0, 1, 0],  # tie: no plurality, no FERPlus majority
        [1, 1, 1, 1, 1, 1, 1, 3, 0, 0],  # plurality contempt; FERPlus rule: single votes dropped -> contempt
        [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],  # unknown -> dropped
    ])
    assert majority_labels(votes, "plurality").tolist() == [0, -1, 7, -1]
    assert majority_labels(votes, "ferplus").tolist() == [0, -1, 7, -1]


def test_votes_mode_soft_labels(ferplus_root):
    ds = build_dataset("ferplus", ferplus_root, "val", label_mode="votes")
    assert ds.soft_labels.shape == (len(ds), 7)
    np.testing.assert_allclose(ds.soft_labels.sum(1), 1, atol=1e-5)
    assert (ds.soft_labels.argmax(1) == ds.labels).mean() > 0.95


@pytest.mark.slow
def test_test_images_duplicated_in_training_are_removed(ferplus_root):
    from ferlab.data.ferplus import pixel_hashes, train_pixel_hashes
    full = ferplus(ferplus_root, "test")
    dedup = ferplus(ferplus_root, "test", exclude_train_duplicates=True)
    assert dedup.meta["removed_train_duplicates"] == len(full) - len(dedup) == 243     # of 3,122
    train = train_pixel_hashes(ferplus_root)
    assert not train & set(pixel_hashes(dedup.paths))
    removed = sorted(set(map(str, full.paths)) - set(map(str, dedup.paths)))
    assert set(pixel_hashes(removed[:20])) <= train
    assert ferplus(ferplus_root, "train", exclude_train_duplicates=True).meta["removed_train_duplicates"] == 0
