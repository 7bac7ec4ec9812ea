"""FER2013: Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``) or the folder layout
``{train,test}/<class>/*.jpg``."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .. import classes as C
from .base import FERDataset
from .errors import DatasetError
from .folder import image_folder

USAGES = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def fer2013_csv(path: str | Path, split: str = "train", image_size: int = 48) -> FERDataset:
    """The rows of Kaggle's ``fer2013.csv`` with the split's ``Usage`` (``train``: Training,
    ``val``: PublicTest, ``test``: PrivateTest): the 48 x 48 grey images held in memory, cached at
    ``image_size`` (``meta["rows"]``: each image's 0-based data row).

    Raises:
        DatasetError: A missing file, a bad header or row (naming the line), an unknown split.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: fer2013.csv not found")
    if split not in USAGES:
        raise DatasetError(f"fer2013 split must be one of {', '.join(sorted(USAGES))}, got {split!r}")
    labels, images, rows = [], [], []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
            raise DatasetError(f"{path}:1: expected header 'emotion,pixels,Usage', got {header}")
        for lineno, row in enumerate(reader, 2):
            if len(row) != 3:
                raise DatasetError(f"{path}:{lineno}: expected 3 columns, got {len(row)}")
            if row[2] != USAGES[split]:
                continue
            try:
                lab = int(row[0])
                pix = np.array(row[1].split(), dtype=np.int64)
            except ValueError as e:
                raise DatasetError(f"{path}:{lineno}: bad emotion or pixel value ({e})") from e
            if not 0 <= lab <= 6:
                raise DatasetError(f"{path}:{lineno}: emotion {lab} outside 0..6")
            if pix.size != 48 * 48 or pix.min() < 0 or pix.max() > 255:
                raise DatasetError(f"{path}:{lineno}: expected 2304 pixel values in 0..255, got {pix.size} "
                                   f"values" + (f" in {pix.min()}..{pix.max()}" if pix.size else ""))
            labels.append(lab)
            images.append(pix.astype(np.uint8).reshape(48, 48))
            rows.append(lineno - 2)
    if not images:
        raise DatasetError(f"{path}: no rows with Usage {USAGES[split]!r} (split {split!r})")
    return FERDataset(classes=C.FER2013, labels=np.array(labels), images=np.stack(images), image_size=image_size,
                      name=f"fer2013-{split}", meta={"csv": str(path), "split": split, "rows": rows})


def fer2013_folder(root: str | Path, split: str = "train", image_size: int = 48,
                   on_bad_image: str = "error") -> FERDataset:
    """Kaggle folder layout: ``ROOT/{train,test}/{angry,disgust,...}/*.jpg``."""
    return image_folder(Path(root) / split, classes=C.FER2013, image_size=image_size,
                        on_bad_image=on_bad_image, name=f"fer2013-{split}")
