"""K-fold cross-validated (out-of-sample) class probabilities of a training set, trained by ferlab.

Fold ``i`` of ``k`` is an ordinary run, ``<out_dir>/<name>-fold<i>of<k>``, of the given config with
``train_folds: {k, fold: i, seed}``: it trains on the run's noisy training set minus fold ``i``
(``ferlab.data.folds``: seeded, stratified by the given labels, drawn after the noise, so every fold
sees the same noisy labels as the full run) and predicts fold ``i`` with its last checkpoint. The
held-out probabilities are cached in the fold run (``heldout-probs.npz``).

Resumable: a fold with ``summary.json`` is not retrained, a fold with a checkpoint resumes from it,
so rerunning after an interruption only trains what is missing.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..engine.checkpoint import load_fresh_npz, save_cache_npz
from .errors import AuditError
from .probs import predict_probs


def fold_config(cfg, k: int, fold: int, seed: int = 0):
    """The TrainConfig of fold ``fold`` of ``k`` (named ``<run name>-fold<fold>of<k>``)."""
    return dataclasses.replace(cfg, train_folds={"k": int(k), "fold": int(fold), "seed": int(seed)},
                               name=f"{cfg.run_name()}-fold{fold}of{k}")


def fold_run_dirs(cfg, k: int, seed: int = 0) -> list[Path]:
    """The run directories of the ``k`` fold runs of ``cfg``, fold 0 first."""
    return [Path(c.out_dir) / c.run_name() for c in (fold_config(cfg, k, i, seed) for i in range(k))]


def train_time(run: Path) -> float:
    """Seconds in the training loop of a run (sum of ``time_s`` over ``metrics.jsonl``), as ``run_grid``."""
    from ..engine.trainer import read_history
    return float(sum(h.get("time_s", 0.0) for h in read_history(run)))


def heldout_probs(run: Path, dataset, rows: np.ndarray, device: str = "cpu") -> np.ndarray:
    """(len(rows), C) probabilities of a fold run on the held-out ``rows`` of ``dataset`` (the full
    noisy training set), cached in ``<run>/heldout-probs.npz``."""
    from ..engine.trainer import load_run_method

    ck = run / "checkpoints" / "last.pt"
    path = run / "heldout-probs.npz"
    cached = load_fresh_npz(path, ck)
    if cached is not None and np.array_equal(cached["rows"], rows) \
            and np.array_equal(cached["labels"], dataset.labels[rows]):
        return cached["probs"]
    method, _, dev = load_run_method(ck, device)
    probs = predict_probs(method, dataset.subset(rows), dev)
    save_cache_npz(path, rows=rows, labels=dataset.labels[rows], probs=probs)
    return probs


def cross_val_probs(cfg, k: int = 5, seed: int = 0, device: str = "cpu", train: bool = True,
                    log: Callable[[str], None] = print) -> dict:
    """Out-of-sample probabilities for every row of ``cfg``'s (noisy) training set.

    Args:
        cfg: the TrainConfig of the full run (method, preset, noise, ...); ``train_folds`` is set per fold.
        k: number of folds (each fold run trains on (k - 1) / k of the rows).
        seed: seed of the fold partition (not of training: that is ``cfg.seed``).
        train: train the folds that are not finished; ``False`` raises :class:`AuditError` naming them.
    Returns:
        ``probs`` (N, C), ``dataset`` (the full noisy training set), ``fold`` (N,) fold of each row,
        ``runs`` (fold run directories), ``train_time_s`` (per fold, seconds in the training loop).
    """
    from ..data.folds import fold_ids
    from ..engine.run_data import build_train_set
    from ..engine.trainer import fit

    full = dataclasses.replace(cfg, train_folds=None)
    dataset = build_train_set(full)[0]
    fold = fold_ids(dataset.labels, k, seed)
    runs = fold_run_dirs(cfg, k, seed)
    missing = [r for r in runs if not (r / "summary.json").is_file()]
    if missing and not train:
        raise AuditError(f"{len(missing)} of {k} fold runs are not finished: {[str(r) for r in missing]}")
    probs = np.full((len(dataset), dataset.num_classes), np.nan)
    for i, run in enumerate(runs):
        if (run / "summary.json").is_file():
            log(f"fold {i + 1}/{k}: {run} finished, not retrained")
        else:
            resume = (run / "checkpoints" / "last.pt").is_file()
            log(f"fold {i + 1}/{k}: {'resuming' if resume else 'training'} {run}")
            fit(fold_config(cfg, k, i, seed), resume=resume)
        probs[fold == i] = heldout_probs(run, dataset, np.flatnonzero(fold == i), device)
    return {"probs": probs, "dataset": dataset, "fold": fold, "runs": runs,
            "train_time_s": [train_time(r) for r in runs]}
