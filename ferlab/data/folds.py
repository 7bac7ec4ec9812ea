"""Seeded, stratified K-fold partitions of a training set (``train_folds``: cross-validation).

A fold run trains on the rows of the other K - 1 folds and never sees its own; the K runs
together give every row one out-of-sample prediction (``ferlab.audit.cross_val``).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def fold_ids(labels, k: int, seed: int = 0) -> np.ndarray:
    """(N,) fold index 0..k-1 of each row, stratified by ``labels`` (a bad ``k`` / ``fold`` / spec raises
    :class:`~ferlab.errors.ConfigError` naming ``train_folds``).

    The rows of each class (classes in index order, label ``-1`` last) are shuffled with
    ``numpy.random.default_rng(seed)`` and dealt round-robin, continuing the deal across classes,
    so every class is split as evenly as it can be and fold sizes differ by at most one.
    Same labels, k and seed -> same folds on every machine.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigError(f"train_folds: k must be an integer >= 2, got {k!r}")
    if len(labels) < k:
        raise ConfigError(f"train_folds: {len(labels)} rows cannot fill k = {k} folds")
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    groups = [c for c in np.unique(labels) if c >= 0] + ([-1] if (labels < 0).any() else [])
    for c in groups:
        rows = rng.permutation(np.flatnonzero(labels == c))
        out[rows] = (dealt + np.arange(len(rows))) % k
        dealt += len(rows)
    return out


def fold_rows(labels, k: int, fold: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows) of fold ``fold`` (both sorted): train = every other fold."""
    if not isinstance(fold, (int, np.integer)) or not 0 <= fold < k:
        raise ConfigError(f"train_folds: fold must be an integer in 0..{k - 1}, got {fold!r}")
    ids = fold_ids(labels, k, seed)
    return np.flatnonzero(ids != fold), np.flatnonzero(ids == fold)


def split_for(labels, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fold_rows` for a ``train_folds`` config entry ``{k, fold, seed}`` (seed optional, 0)."""
    if not isinstance(spec, dict) or not {"k", "fold"} <= set(spec) or set(spec) - {"k", "fold", "seed"}:
        raise ConfigError(f"train_folds must be a mapping with keys k, fold and optionally seed, got {spec!r}")
    return fold_rows(labels, spec["k"], spec["fold"], spec.get("seed", 0))
