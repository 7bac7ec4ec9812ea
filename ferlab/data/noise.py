"""Label noise: symmetric, asymmetric (class-pair map) and from file, with manifests.

The symmetric generator is SCN's / EAC's: each label is flipped with probability
``rate`` (an independent Bernoulli draw) to a class drawn uniformly from the *other*
classes. Draws use ``numpy.random.Generator(PCG64(seed))`` in a fixed order, so the
same seed gives the same labels on every machine and DDP rank.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..errors import ConfigError
from .errors import DatasetError

KINDS = ("none", "symmetric", "asymmetric", "from_file")

#: Confusions real FER annotators make (FER2013 vs FERPlus majority), by class name.
DEFAULT_ASYMMETRIC = {"sadness": "neutral", "fear": "surprise", "anger": "disgust", "disgust": "anger",
                      "surprise": "fear", "happiness": "neutral", "neutral": "sadness"}


def labels_sha256(labels: np.ndarray) -> str:
    """SHA-256 hex digest of the labels (N,) as little-endian int64: the same on every machine."""
    return hashlib.sha256(np.asarray(labels, dtype="<i8").tobytes()).hexdigest()


def symmetric_noise(labels: np.ndarray, rate: float, num_classes: int, seed: int) -> np.ndarray:
    """Flip each label w.p. ``rate`` to a uniformly drawn *different* class (-1 stays -1)."""
    if not 0 <= rate <= 1:
        raise ConfigError(f"noise rate must be in [0, 1], got {rate}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    flip = rng.random(len(labels)) < rate
    # a uniform draw over the K-1 other classes: shift by 1..K-1 modulo K
    shift = rng.integers(1, num_classes, size=len(labels))
    noisy = np.where(flip & (labels >= 0), (labels + shift) % num_classes, labels)
    return noisy


def asymmetric_noise(labels: np.ndarray, rate: float, mapping: Mapping[int, int], seed: int) -> np.ndarray:
    """Flip label ``c`` to ``mapping[c]`` w.p. ``rate`` (classes absent from the map never flip)."""
    if not 0 <= rate <= 1:
        raise ConfigError(f"noise rate must be in [0, 1], got {rate}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    flip = rng.random(len(labels)) < rate
    target = np.array([mapping.get(int(c), int(c)) for c in range(max(labels.max() + 1, 1))])
    return np.where(flip & (labels >= 0), target[np.maximum(labels, 0)], labels)


def class_map(classes: Sequence[str], pairs: Mapping[str, str] | None = None) -> dict[int, int]:
    """Turn a name->name confusion map into an index map for ``classes``."""
    pairs = DEFAULT_ASYMMETRIC if pairs is None else pairs
    return {classes.index(a): classes.index(b) for a, b in pairs.items() if a in classes and b in classes}


def manifest(clean: np.ndarray, noisy: np.ndarray, num_classes: int, kind: str, rate: float, seed: int | None,
             **extra) -> dict:
    """What noise did to ``clean`` -> ``noisy`` (both (N,) int, ``-1`` rows not counted): kind,
    rate, seed, ``num_samples``, ``realised_rate``, ``num_flipped``, ``flips_per_class`` (C,),
    ``confusion`` (C, C) clean x noisy counts, the two label hashes, and ``extra``."""
    ok = clean >= 0
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (clean[ok], noisy[ok]), 1)
    flipped = ok & (clean != noisy)
    return {
        "kind": kind, "rate": rate, "seed": seed, "num_samples": int(ok.sum()),
        "realised_rate": float(flipped.sum() / max(ok.sum(), 1)), "num_flipped": int(flipped.sum()),
        "flips_per_class": np.bincount(clean[flipped], minlength=num_classes).tolist(),
        "confusion": conf.tolist(), "clean_sha256": labels_sha256(clean), "noisy_sha256": labels_sha256(noisy),
        **extra,
    }


def make_noisy_labels(clean, num_classes: int, kind: str = "symmetric", rate: float = 0.0, seed: int = 0,
                      classes: Sequence[str] | None = None, pairs: Mapping[str, str] | None = None,
                      noisy_labels=None) -> tuple[np.ndarray, dict]:
    """Noisy labels and their manifest. ``kind='from_file'`` takes ``noisy_labels`` as given."""
    clean = np.asarray(clean, dtype=np.int64)
    extra = {}
    if kind == "none" or (kind in ("symmetric", "asymmetric") and rate == 0):
        noisy = clean.copy()
    elif kind == "symmetric":
        noisy = symmetric_noise(clean, rate, num_classes, seed)
    elif kind == "asymmetric":
        if classes is None:
            raise ConfigError("asymmetric noise needs the class names (classes=...)")
        m = class_map(classes, pairs)
        noisy = asymmetric_noise(clean, rate, m, seed)
        extra["pairs"] = {classes[a]: classes[b] for a, b in m.items()}
    elif kind == "from_file":
        if noisy_labels is None:
            raise ConfigError("kind='from_file' needs noisy_labels")
        noisy = np.asarray(noisy_labels, dtype=np.int64)
        if noisy.shape != clean.shape:
            raise ConfigError(f"noisy labels have {len(noisy)} entries for {len(clean)} samples")
        seed = None
    else:
        raise ConfigError(f"noise kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return noisy, manifest(clean, noisy, num_classes, kind, rate, seed, **extra)


def read_noise_file(path: str | Path, dataset) -> np.ndarray:
    """The labels a ``<image name> <1-based label>`` file (``ferlab noise --out``, EAC's
    ``noise0X.txt``) gives the samples of ``dataset``, matched by name
    (:meth:`~ferlab.data.FERDataset.sample_names`), so row order does not matter; rows for images
    outside ``dataset`` (a file for the full split, a ``limit_train`` run) are ignored. A name listed
    twice, or a sample the file does not name, is a :class:`DatasetError` naming the file."""
    from .rafdb import read_label_list
    if path is None:
        raise ConfigError("noise from_file needs a noise file (--noise-file FILE: '<image name> <1-based label>' "
                          "lines)")
    path = Path(path)
    rows = read_label_list(path, dataset.num_classes)
    if not rows:
        raise DatasetError(f"{path}: no '<image name> <label>' rows")
    table = dict(rows)
    names = dataset.sample_names()
    seen: set = set()
    for n in names:
        if n in seen:
            raise DatasetError(f"{dataset.name}: two samples are named {n!r}; a noise file needs unique image names")
        seen.add(n)
    missing = [n for n in names if n not in table]
    if missing:
        raise DatasetError(f"{path}: no label for {len(missing)} of the {len(names)} images of {dataset.name} "
                           f"({len(rows)} rows), e.g. {', '.join(repr(m) for m in missing[:3])}; the file names "
                           f"images like {rows[0][0]!r} (a file for another dataset or split?)")
    return np.array([table[n] for n in names], dtype=np.int64)


def apply_noise(dataset, kind: str = "symmetric", rate: float = 0.0, seed: int = 0, pairs=None,
                noise_file: str | Path | None = None) -> dict:
    """Replace ``dataset.labels`` with noisy labels drawn from its clean labels
    (``clean_labels`` when present). ``kind='from_file'`` reads ``noise_file`` by image name
    (:func:`read_noise_file`). Returns the manifest."""
    clean = dataset.clean_labels if dataset.clean_labels is not None else dataset.labels
    noisy_given = None
    if kind == "from_file":
        noisy_given = read_noise_file(noise_file, dataset)
    noisy, man = make_noisy_labels(clean, dataset.num_classes, kind, rate, seed, dataset.classes, pairs, noisy_given)
    if dataset.clean_labels is None:
        dataset.clean_labels = clean.copy()
    dataset.labels = noisy
    man["dataset"] = dataset.name
    man["classes"] = list(dataset.classes)
    if kind == "from_file":
        man["noise_file"] = str(noise_file)
    return man


def save_manifest(man: dict, path: str | Path) -> None:
    """Write a noise manifest as JSON to ``path`` atomically."""
    write_text_atomic(json.dumps(man, indent=2), path)
