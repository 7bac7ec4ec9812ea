"""Neighbour lists in the feature space of a saved run.

:mod:`ferlab.data.neighbors` ranks given points and never loads a run; turning a run's checkpoint
into the (N, D) penultimate features of a dataset is the engine's (it rebuilds the run's method).
:func:`build_neighbors` is :func:`ferlab.data.neighbors.build_neighbors` with ``space: features``
served from ``checkpoint`` -- what ``ferlab neighbors --checkpoint`` and the notebooks call; the
trainer serves LDLVA's ``space_checkpoint`` through :func:`checkpoint_features`
(:meth:`ferlab.methods.base.Method.run_features_checkpoint`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import neighbors as data_neighbors
from ..data.errors import DatasetError
from .inference import dataset_features
from .run_model import load_run_method


def checkpoint_features(checkpoint: str | Path, dataset, device: str = "cpu", progress: bool = True,
                        amp="auto") -> np.ndarray:
    """(N, D) float32 penultimate features of every sample of ``dataset`` (eval transform) under the
    method saved in ``checkpoint`` (a ferlab run's ``checkpoints/*.pt``), computed on ``device`` with the
    network under ``amp`` autocast (:func:`~ferlab.engine.inference.dataset_features`)."""
    if not Path(checkpoint).is_file():
        raise DatasetError(f"{checkpoint}: no checkpoint for the feature space (train that run first)")
    method, _, dev = load_run_method(checkpoint, device=device)
    return dataset_features(method, dataset, dev, progress=progress, amp=amp)


def build_neighbors(dataset, space: str = "va", k: int = 8, scale: float | None = None,
                    checkpoint: str | Path | None = None, coordinates=None, device: str = "cpu",
                    progress: bool = True) -> dict:
    """:func:`ferlab.data.neighbors.build_neighbors`; in ``space`` ``features`` without
    ``coordinates`` the points are :func:`checkpoint_features` of ``checkpoint`` (on ``device``).
    The result's ``source`` is ``checkpoint`` (or "")."""
    if space == "features" and coordinates is None:
        if checkpoint is None:
            raise DatasetError("space 'features' needs checkpoint= (a ferlab run's checkpoint)")
        coordinates = checkpoint_features(checkpoint, dataset, device, progress)
    return data_neighbors.build_neighbors(dataset, space, k, scale, coordinates=coordinates,
                                          source=str(checkpoint) if checkpoint else "")
