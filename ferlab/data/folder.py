"""Any ImageFolder: ``ROOT/<split>/<class name>/*.{jpg,png,...}``.

``--dataset folder --data-root ROOT`` reads ``ROOT/train``, ``ROOT/val`` and ``ROOT/test``; a split folder
that is absent is simply not there (:func:`folder_splits`): a run without ``ROOT/val`` trains without
validation, or holds out part of ``train`` with ``val_fraction``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import classes as C
from .base import FERDataset
from .errors import DatasetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def image_folder(root: str | Path, classes: Sequence[str] | None = None, image_size: int = 112,
                 on_bad_image: str = "error", name: str | None = None) -> FERDataset:
    """Class folders are matched to ``classes`` by (aliased) emotion name; without
    ``classes`` the sorted folder names become the classes."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(f"{root}: no class sub-folders (expected ROOT/<class>/*.jpg)")
    if classes is None:
        classes = tuple(p.name for p in folders)
        index = {p.name: i for i, p in enumerate(folders)}
    else:
        index = {}
        for p in folders:
            try:
                index[p.name] = list(classes).index(C.canonical_name(p.name))
            except (KeyError, ValueError) as e:
                raise DatasetError(f"{p}: folder name is not one of the classes {list(classes)}") from e
    paths, labels = [], []
    for p in folders:
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [index[p.name]] * len(files)
    if not paths:
        raise DatasetError(f"{root}: class folders contain no images ({sorted(IMAGE_SUFFIXES)})")
    return FERDataset(classes=classes, labels=np.array(labels), paths=paths, image_size=image_size,
                      on_bad_image=on_bad_image, name=name or f"folder-{root.name}", meta={"root": str(root)})


def _has_class_folders(path: Path) -> bool:
    return path.is_dir() and any(p.is_dir() for p in path.iterdir())


def folder_splits(root: str | Path) -> tuple[str, ...]:
    """The split sub-folders of ``root`` that hold class folders, ``train`` / ``val`` / ``test``
    first, then any others in name order."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found")
    found = sorted(p.name for p in root.iterdir() if _has_class_folders(p))
    known = [s for s in ("train", "val", "test") if s in found]
    return tuple(known + [s for s in found if s not in known])
