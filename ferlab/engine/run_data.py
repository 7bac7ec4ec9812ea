"""A run's datasets as its :class:`~ferlab.engine.config.TrainConfig` defines them: the training set
as it trains (``limit_train``, the ``val_fraction`` hold-out, the noise, the ``train_folds`` fold) and
the evaluation splits with clean labels. The trainer, ``ferlab eval``, the audit, the figures and the
predictor all read a run's data through these functions.
"""
from __future__ import annotations

import numpy as np

from ..data import build_dataset
from ..data.folds import split_for
from ..data.holdout import holdout_split
from ..data.landmarks import attach_landmarks
from ..data.noise import apply_noise
from ..data.registry import SPLITS, dataset_has_split
from .config import TrainConfig


def _train_rows(cfg: TrainConfig):
    """The training split as a run reads it before any hold-out: ``limit_train`` applied, then the
    ``landmarks`` file attached (it needs to hold only the images the run reads)."""
    args = dict(cfg.dataset_args)
    landmarks = args.pop("landmarks", None)
    ds = build_dataset(cfg.dataset, cfg.data_root, cfg.train_split, **args)
    if cfg.limit_train:
        ds = ds.subset(np.arange(min(cfg.limit_train, len(ds))))
    if landmarks:
        attach_landmarks(ds, landmarks)
    return ds


def build_train_set(cfg: TrainConfig):
    """A run's training set as it trains: ``limit_train`` applied, the ``val_fraction`` hold-out
    removed, then its noise, then (``train_folds``) the held-out fold removed, so a fold run trains on
    the same noisy labels as the full run. Returns (dataset, noise manifest of the full set or None)."""
    ds = _train_rows(cfg)
    if cfg.val_fraction:
        ds = ds.subset(holdout_split(ds.labels, cfg.val_fraction, cfg.seed)[0])
    manifest = None
    if cfg.noise != "none":
        manifest = apply_noise(ds, cfg.noise, cfg.noise_rate, cfg.noise_seed, noise_file=cfg.noise_file)
    if cfg.train_folds:
        ds = ds.subset(split_for(ds.labels, cfg.train_folds)[0])
    return ds, manifest


TRAIN_SPLIT_KEYS = ("noise_file", "landmarks")     # files that describe the training split's images only


def eval_dataset_args(cfg: TrainConfig) -> dict:
    """Evaluation splits always carry clean labels: FERPlus majority, no noise file (and no
    training-split landmark file). ``eval_dataset_args`` are applied over the training arguments
    minus those files (they may name their own)."""
    args = {k: v for k, v in cfg.dataset_args.items() if k not in TRAIN_SPLIT_KEYS}
    if cfg.eval_dataset_args is not None:
        return {**args, **cfg.eval_dataset_args}
    if "label_mode" in args:
        args["label_mode"] = "majority"
    return args


def has_split(cfg: TrainConfig, which: str) -> bool:
    """Whether a run has its ``val`` / ``test`` split: the ``val_fraction`` hold-out, or a split the
    dataset has. A validation split the dataset lacks (RAF-DB, a ``folder`` without ``ROOT/val``)
    means no validation; a missing test split stays an error when it is read."""
    if which == "val" and cfg.val_fraction:
        return True
    split = cfg.val_split if which == "val" else cfg.test_split
    if not split:
        return False
    if which == "val" and (cfg.dataset == "folder" or cfg.dataset in SPLITS):
        return dataset_has_split(cfg.dataset, split, cfg.data_root)
    return True


def build_eval_set(cfg: TrainConfig, which: str):
    """A run's ``val`` or ``test`` split with clean labels (:func:`eval_dataset_args`), ``limit_eval``
    applied; ``val`` is the seeded hold-out of the training rows when ``val_fraction > 0``.
    ``None`` when the run has no such split (:func:`has_split`)."""
    if not has_split(cfg, which):
        return None
    if which == "val" and cfg.val_fraction:
        rows = _train_rows(cfg)
        held = holdout_split(rows.labels, cfg.val_fraction, cfg.seed)[1]
        clean = build_dataset(cfg.dataset, cfg.data_root, cfg.train_split, **eval_dataset_args(cfg))
        if rows.paths is not None and clean.paths is not None:      # the same images, clean labels
            where = {p: i for i, p in enumerate(clean.paths)}
            ds = clean.subset([where[rows.paths[i]] for i in held if rows.paths[i] in where])
        else:
            ds = clean.subset(held)
    else:
        ds = build_dataset(cfg.dataset, cfg.data_root, cfg.val_split if which == "val" else cfg.test_split,
                           **eval_dataset_args(cfg))
    if cfg.limit_eval:
        ds = ds.subset(np.arange(min(cfg.limit_eval, len(ds))))
    return ds
