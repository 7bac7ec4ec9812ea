"""Per-epoch training orders: every rank's sample indices for one epoch, a pure function of
(seed, epoch, rank), so a resumed run replays exactly the order it would have seen.

- ``uniform``: one permutation of the training set, strided over ranks (the default).
- ``balanced``: DMUE's ImbalancedDatasetSampler -- N draws *with replacement*, each sample
  weighted 1 / count(its label), then strided over ranks. Small batches may miss a class.
- ``stratified``: class-balanced like ``balanced``, but every batch of ``batch_size`` holds
  ``batch_size // C`` samples of each class (plus a few distinct extra classes), so a batch of
  at least 2 C samples always has 2 of every class (DMUE's batch filter then never skips).
  Within a class the samples cycle through reshuffled permutations (no repeats before the
  class is exhausted). Each rank builds its own batches from (seed, epoch, rank).
- ``progressive``: LA-Net's MySampler -- N draws per epoch whose class shares move linearly from
  the label frequencies (epoch 0) to uniform (epoch ``total_epochs``): pi_c(e) = (1 - e/E) n_c/N
  + (e/E)/C; ceil(pi_c N) for the first C-1 classes, the remainder for the last; within a class
  without replacement up to n_c, beyond that whole-class repeats plus a random remainder; then
  shuffled and strided over ranks. (The official code seeds numpy with the epoch; here the draws
  come from (seed, epoch) like every other sampler.)

The labels are the *training* labels (noisy where noise was injected): that is all a sampler
may know.
"""
from __future__ import annotations

import numpy as np

SAMPLERS = ("uniform", "balanced", "stratified", "progressive")


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1, kind: str = "uniform",
                labels: np.ndarray | None = None, batch_size: int | None = None,
                total_epochs: int | None = None) -> np.ndarray:
    """Indices this rank trains on in ``epoch``: (n // world_size,) (all n when single-process).

    ``labels`` (n,) are needed by ``balanced`` / ``stratified`` / ``progressive``; ``batch_size``
    is the per-rank batch of ``stratified``; ``total_epochs`` the E of ``progressive``.
    """
    if kind not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
    usable = (n // world_size) * world_size if world_size > 1 else n
    if kind == "uniform":
        perm = np.random.Generator(np.random.PCG64([seed, epoch])).permutation(n)
        return perm[:usable][rank::world_size]
    if labels is None or len(labels) != n:
        raise ValueError(f"sampler {kind!r} needs the {n} training labels")
    labels = np.asarray(labels)
    if kind == "balanced":
        rng = np.random.Generator(np.random.PCG64([seed, epoch]))
        counts = np.bincount(labels)
        w = 1.0 / counts[labels]
        draws = rng.choice(n, size=usable, replace=True, p=w / w.sum())
        return draws[rank::world_size]
    if kind == "progressive":
        if not total_epochs:
            raise ValueError("sampler 'progressive' needs total_epochs")
        draws = progressive_draws(labels, epoch, total_epochs, np.random.Generator(np.random.PCG64([seed, epoch])))
        return draws[:usable][rank::world_size]
    if not batch_size or batch_size < 1:
        raise ValueError("sampler 'stratified' needs a positive per-rank batch_size")
    rng = np.random.Generator(np.random.PCG64([seed, epoch, rank]))
    return _stratified(labels, usable // world_size, batch_size, rng)


def _stratified(labels: np.ndarray, total: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    classes = np.unique(labels)
    k = len(classes)
    slots = []   # the class of every position, batch by batch
    for lo in range(0, total, batch_size):
        b = min(batch_size, total - lo)
        cls = [rng.permutation(k) for _ in range(b // k)] + [rng.choice(k, b % k, replace=False)]
        slots.append(rng.permutation(np.concatenate(cls)))
    slots = np.concatenate(slots) if slots else np.zeros(0, dtype=np.int64)
    out = np.empty(total, dtype=np.int64)
    for j, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        where = np.flatnonzero(slots == j)
        reps = -(-len(where) // len(members))
        pool = np.concatenate([rng.permutation(members) for _ in range(max(reps, 1))])
        out[where] = pool[:len(where)]
    return out


def progressive_counts(labels: np.ndarray, epoch: int, total_epochs: int) -> np.ndarray:
    """(C,) draws per class in ``epoch`` (they sum to N); C = the largest label + 1."""
    counts = np.bincount(labels)
    n, c = len(labels), len(counts)
    t = min(epoch / total_epochs, 1.0)
    share = (1 - t) * counts / n + t / c
    out = np.ceil(share * n).astype(np.int64)
    out[-1] = n - out[:-1].sum()
    return out


def progressive_draws(labels: np.ndarray, epoch: int, total_epochs: int, rng: np.random.Generator) -> np.ndarray:
    """One epoch of the ``progressive`` sampler (module docstring): per class its
    :func:`progressive_counts` share of draws from ``labels`` (N,), without replacement up to the
    class size and whole-class repeats beyond, shuffled; returns the sample indices."""
    parts = []
    for c, want in enumerate(progressive_counts(labels, epoch, total_epochs)):
        members = np.flatnonzero(labels == c)
        if want <= 0 or not len(members):
            continue
        if want <= len(members):
            parts.append(rng.choice(members, want, replace=False))
        else:
            parts += [members] * (want // len(members)) + [rng.choice(members, want % len(members), replace=False)]
    return rng.permutation(np.concatenate(parts))
