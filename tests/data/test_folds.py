"""Stratified K-fold partitions (``train_folds``): a partition, balanced per class, seeded, drawn after the noise."""
import dataclasses

import numpy as np
import pytest

from ferlab.data.folds import fold_ids, fold_rows, split_for
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import build_train_set


def test_fold_ids_partition_balanced_per_class_and_seeded():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 1 + [-1] * 2)
    ids = fold_ids(labels, 3, seed=4)
    assert ids.min() == 0 and ids.max() == 2
    sizes = np.bincount(ids, minlength=3)
    assert sizes.sum() == len(labels) and sizes.max() - sizes.min() <= 1
    for c in (0, 1, -1):
        per = np.bincount(ids[labels == c], minlength=3)
        assert per.max() - per.min() <= 1, (c, per)
    assert np.array_equal(ids, fold_ids(labels, 3, seed=4))
    assert not np.array_equal(ids, fold_ids(labels, 3, seed=5))
    train, held = fold_rows(labels, 3, 1, seed=4)
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(len(labels)))
    assert np.array_equal(held, np.flatnonzero(ids == 1))


def test_bad_fold_specs_name_the_problem():
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        fold_ids([0, 1, 2], 1)
    with pytest.raises(ValueError, match="fold must be an integer in 0..1"):
        fold_rows([0, 1, 0, 1], 2, 2)
    with pytest.raises(ValueError, match="keys k, fold"):
        split_for([0, 1], {"k": 2, "folds": 0})


def test_train_folds_remove_the_held_out_fold_after_the_noise():
    cfg = TrainConfig(dataset="synthetic", dataset_args={"n": 60, "image_size": 16}, noise="symmetric",
                      noise_rate=0.3, noise_seed=3)
    full, manifest = build_train_set(cfg)
    ids = fold_ids(full.labels, 3, seed=0)
    for fold in range(3):
        part, m = build_train_set(dataclasses.replace(cfg, train_folds={"k": 3, "fold": fold}))
        keep = np.flatnonzero(ids != fold)
        # the same noisy labels as the full run (noise drawn on all rows first), fold `fold` missing
        assert np.array_equal(part.labels, full.labels[keep])
        assert np.array_equal(part.clean_labels, full.clean_labels[keep])
        assert np.array_equal(part.get_batch(np.arange(3))["image"], full.get_batch(keep[:3])["image"])
        assert m["noisy_sha256"] == manifest["noisy_sha256"]
