"""Per-epoch sample orders: determinism, class balance, stratified batches."""
import numpy as np
import pytest

from ferlab.data.samplers import epoch_order

LABELS = np.repeat(np.arange(7), [400, 40, 100, 300, 200, 150, 60])   # imbalanced, like FERPlus


def test_uniform_is_a_permutation_split_over_ranks():
    parts = [epoch_order(101, 0, 3, r, 2) for r in range(2)]
    both = np.concatenate(parts)
    assert len(both) == 100 and len(np.unique(both)) == 100
    assert np.array_equal(epoch_order(101, 0, 3, 0, 2), parts[0])
    assert not np.array_equal(epoch_order(101, 0, 4, 0, 2), parts[0])


def test_balanced_draws_every_class_about_equally():
    idx = epoch_order(len(LABELS), 0, 0, kind="balanced", labels=LABELS)
    share = np.bincount(LABELS[idx], minlength=7) / len(idx)
    assert len(idx) == len(LABELS) and np.all(np.abs(share - 1 / 7) < 0.03)


@pytest.mark.parametrize("world", [1, 2])
def test_stratified_batches_hold_every_class_and_replay_exactly(world):
    b = 32 // world
    for rank in range(world):
        idx = epoch_order(len(LABELS), 5, 2, rank, world, "stratified", LABELS, b)
        assert len(idx) == len(LABELS) // world
        full = (len(idx) // b) * b
        for lo in range(0, full, b):
            counts = np.bincount(LABELS[idx[lo:lo + b]], minlength=7)
            assert counts.min() >= b // 7 >= 2
        assert np.array_equal(idx, epoch_order(len(LABELS), 5, 2, rank, world, "stratified", LABELS, b))
    # the rare class (40 images) is not repeated before all of its images were used
    idx = epoch_order(len(LABELS), 5, 2, 0, 1, "stratified", LABELS, 32)
    rare = idx[LABELS[idx] == 1]
    assert len(np.unique(rare[:40])) == 40


def test_bad_sampler_arguments_are_named():
    with pytest.raises(ValueError, match="sampler must be one of"):
        epoch_order(10, 0, 0, kind="weighted")
    with pytest.raises(ValueError, match="needs the 10 training labels"):
        epoch_order(10, 0, 0, kind="balanced")
