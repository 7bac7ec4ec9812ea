"""FERDataset: the one dataset type every loader returns.

A sample is a dict with ``image`` (uint8 tensor 3xSxS), ``label`` (int, the
training label -- possibly noisy; ``-1`` = no label), ``index`` (stable position)
and, when the dataset has them, ``clean_label``, ``soft_label`` (float C-vector),
``landmarks`` (Kx2, pixel coordinates of ``image``), ``va`` (2 floats).

Images are decoded once into an :class:`~ferlab.data.cache.ImageCache` and
batches are gathered with :meth:`FERDataset.get_batch` (no per-sample Python work
in the training loop); augmentation happens batched on the device
(:mod:`ferlab.data.transforms`).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .cache import ImageCache
from .errors import DatasetError
from .io import read_image

OPTIONAL_KEYS = ("clean_label", "soft_label", "landmarks", "va")


class FERDataset(torch.utils.data.Dataset):
    """Images (files or an in-memory uint8 array) plus per-sample annotations.

    Args:
        classes: class names in label-index order.
        labels: (N,) int training labels (``-1`` = unlabelled, ignored by losses/metrics).
        paths: N image files, decoded lazily and cached; or
        images: (N, H, W[, 3]) uint8 array already in memory.
        image_size: side of the square uint8 images the cache holds.
        landmarks: (N, K, 2) float, pixel coordinates in the *original* image of
            side ``landmark_size`` (rescaled to ``image_size``).
        on_bad_image: ``"error"`` (default) raises naming the file; ``"skip"``
            decodes everything up front and drops (and counts) bad files.
    """

    def __init__(self, *, classes: Sequence[str], labels, paths: Sequence[str | Path] | None = None,
                 images: np.ndarray | None = None, image_size: int = 64, clean_labels=None,
                 soft_labels=None, landmarks=None, landmark_size: float | None = None, va=None,
                 on_bad_image: str = "error", name: str = "dataset", meta: dict | None = None):
        if (paths is None) == (images is None):
            raise ValueError("give exactly one of paths= or images=")
        if on_bad_image not in ("error", "skip"):
            raise ValueError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
        self.name = name
        self.classes = tuple(classes)
        self.image_size = int(image_size)
        self.meta = dict(meta or {})
        self.paths = [str(p) for p in paths] if paths is not None else None
        self._array = images
        n = len(self.paths) if self.paths is not None else len(images)
        self.labels = self._check_labels(labels, n, "labels")
        self.clean_labels = None if clean_labels is None else self._check_labels(clean_labels, n, "clean_labels")
        self.soft_labels = None if soft_labels is None else np.asarray(soft_labels, dtype=np.float32)
        self.va = None if va is None else np.asarray(va, dtype=np.float32)
        self.landmarks = None
        if landmarks is not None:
            lm = np.asarray(landmarks, dtype=np.float32)
            scale = self.image_size / float(landmark_size) if landmark_size else 1.0
            self.landmarks = lm * scale
        for what in ("soft_labels", "va", "landmarks"):
            self._check_finite(getattr(self, what), n, what)
        self.skipped: list[str] = []
        self.cache = ImageCache(n, self.image_size, self._decode)
        if on_bad_image == "skip" and self.paths is not None:
            self._drop_bad_images()

    # -- construction helpers -------------------------------------------------
    def _check_labels(self, labels, n: int, what: str) -> np.ndarray:
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(lab) != n:
            raise DatasetError(f"{self.name}: {what} has {len(lab)} entries for {n} images")
        bad = (lab >= len(self.classes)) | (lab < -1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{self.name}: {what}[{i}] = {lab[i]} is outside 0..{len(self.classes) - 1}")
        return lab

    def _check_finite(self, values, n: int, what: str) -> None:
        """Per-sample float annotations: one row per image, no NaN/inf."""
        if values is None:
            return
        if len(values) != n:
            raise DatasetError(f"{self.name}: {what} has {len(values)} rows for {n} images")
        bad = ~np.isfinite(values.reshape(n, -1)).all(1) if n else np.zeros(0, bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{self.name}: {what}[{i}] holds NaN/inf ({int(bad.sum())} rows do)")

    def _decode(self, i: int) -> np.ndarray:
        if self.paths is not None:
            return read_image(self.paths[i], self.image_size)
        from .io import resize_array
        return resize_array(self._array[i], self.image_size)

    def _drop_bad_images(self) -> None:
        keep = []
        for i, p in enumerate(self.paths):
            try:
                read_image(p, None)
                keep.append(i)
            except DatasetError:
                self.skipped.append(p)
        if self.skipped:
            self._select(np.asarray(keep, dtype=np.int64))

    def _select(self, keep: np.ndarray) -> None:
        names = self.meta.get("names")
        if isinstance(names, list) and len(names) == len(self.labels):   # per-row names follow the rows
            self.meta = {**self.meta, "names": [names[i] for i in keep]}
        self.paths = [self.paths[i] for i in keep] if self.paths is not None else None
        if self._array is not None:
            self._array = self._array[keep]
        self.labels = self.labels[keep]
        for key in ("clean_labels", "soft_labels", "va", "landmarks"):
            val = getattr(self, key)
            if val is not None:
                setattr(self, key, val[keep])
        self.cache = ImageCache(len(keep), self.image_size, self._decode)

    def subset(self, keep) -> FERDataset:
        """A new dataset holding rows ``keep`` (indices are renumbered 0..len-1)."""
        import copy
        out = copy.copy(self)
        out._select(np.asarray(keep, dtype=np.int64))
        return out

    # -- access ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """C, the number of class names."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def keys(self) -> list[str]:
        """The keys of a sample / batch: ``image``, ``label``, ``index`` and the optional
        annotations this dataset has."""
        attrs = {"clean_label": self.clean_labels, "soft_label": self.soft_labels,
                 "landmarks": self.landmarks, "va": self.va}
        return ["image", "label", "index"] + [k for k, v in attrs.items() if v is not None]

    def __getitem__(self, i: int) -> dict:
        batch = self.get_batch(np.array([i]))
        ints = ("label", "index", "clean_label")
        return {k: int(v[0]) if k in ints else v[0] for k, v in batch.items()}

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        """Gather a batch: ``image`` (B,3,S,S) uint8 on the cache's device, the rest as tensors."""
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices, dtype=np.int64)
        batch = {"image": self.cache.get(idx), "label": torch.from_numpy(self.labels[idx]),
                 "index": torch.from_numpy(idx)}
        if self.clean_labels is not None:
            batch["clean_label"] = torch.from_numpy(self.clean_labels[idx])
        for key, val in (("soft_label", self.soft_labels), ("landmarks", self.landmarks), ("va", self.va)):
            if val is not None:
                batch[key] = torch.from_numpy(val[idx])
        return batch

    def preload(self, threads: int = 4, progress: bool = True) -> FERDataset:
        """Decode every image into the cache now (``threads`` threads, a progress bar); returns ``self``."""
        self.cache.preload(threads, progress, desc=f"decoding {self.name}")
        return self

    def set_labels(self, labels) -> None:
        """Replace the training labels (e.g. with noisy ones); the first call keeps the
        originals as ``clean_labels`` if the dataset had none."""
        new = self._check_labels(labels, len(self), "labels")
        if self.clean_labels is None:
            self.clean_labels = self.labels.copy()
        self.labels = new

    def sample_names(self) -> list[str]:
        """One unique name per sample, as label / landmark / noise files name images: the loader's
        ``meta["names"]`` (FERPlus, RAF-DB), else each path relative to the dataset root
        (``folder``: ``<class>/<file>``), else the file name; in-memory datasets: the row number."""
        names = self.meta.get("names")
        if isinstance(names, list) and len(names) == len(self):
            return [str(n) for n in names]
        if self.paths is None:
            return [f"{i:06d}" for i in range(len(self))]
        root = self.meta.get("root")
        out = []
        for p in self.paths:
            path = Path(p)
            try:
                out.append(path.relative_to(root).as_posix() if root else path.name)
            except ValueError:
                out.append(path.name)
        return out

    def class_counts(self, labels=None) -> np.ndarray:
        """(C,) number of samples per class of ``labels`` (default: the training labels); ``-1`` is not counted."""
        lab = self.labels if labels is None else np.asarray(labels)
        return np.bincount(lab[lab >= 0], minlength=self.num_classes)

    def __repr__(self) -> str:
        return (f"FERDataset({self.name!r}, n={len(self)}, classes={list(self.classes)}, "
                f"image_size={self.image_size}, keys={self.keys()})")
