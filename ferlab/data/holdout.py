"""A seeded, stratified validation hold-out carved from a training split (``val_fraction``)."""
from __future__ import annotations

import numpy as np


def holdout_split(labels, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, val), both sorted.

    Each class gives ``round(fraction * n_c)`` of its ``n_c`` rows to ``val`` (at least one when the
    class has two or more rows and ``fraction > 0``, never all of them), drawn with
    ``numpy.random.default_rng(seed)``; rows with label ``-1`` stay in ``train``.
    Same labels, fraction and seed -> same split on every machine.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels[labels >= 0]):
        rows = np.flatnonzero(labels == c)
        k = int(round(fraction * len(rows)))
        if fraction > 0 and len(rows) >= 2:
            k = min(max(k, 1), len(rows) - 1)
        else:
            k = 0
        val.append(rng.permutation(rows)[:k])
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val
