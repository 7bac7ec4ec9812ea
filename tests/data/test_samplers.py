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


def test_progressive_sampler_moves_from_label_frequencies_to_uniform():
    from ferlab.data.samplers import progressive_counts
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    assert progressive_counts(labels, 0, 10).tolist() == [50, 30, 15, 5]
    assert progressive_counts(labels, 10, 10).tolist() == [25, 25, 25, 25]
    half = progressive_counts(labels, 5, 10)
    assert half.sum() == 100 and half.tolist() == [38, 28, 20, 14]         # ceil(100 (0.5 n_c/N + 0.125))
    order = epoch_order(100, 0, 10, kind="progressive", labels=labels, total_epochs=10)
    assert np.bincount(labels[order]).tolist() == [25, 25, 25, 25]
    rare = order[labels[order] == 3]
    assert sorted(np.unique(rare, return_counts=True)[1]) == [5] * 5      # 5 samples, each repeated 5 times
    again = epoch_order(100, 0, 10, kind="progressive", labels=labels, total_epochs=10)
    assert (order == again).all()
    ranks = [epoch_order(100, 0, 3, r, 2, "progressive", labels, total_epochs=10) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 50
    with pytest.raises(ValueError, match="total_epochs"):
        epoch_order(100, 0, 0, kind="progressive", labels=labels)
