"""AffectNet: official ``training.csv`` / ``validation.csv`` (manually annotated set).

Columns used: ``subDirectory_filePath, expression, valence, arousal``; images under
``ROOT/Manually_Annotated_Images/<subDirectory_filePath>`` (or ``image_dir``).
Expression codes 0..7 = Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger,
Contempt; codes 8..10 (none / uncertain / no-face) and, for 7 classes, contempt are dropped.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .. import classes as C
from .base import FERDataset
from .errors import DatasetError

CSV = {"train": "training.csv", "val": "validation.csv"}
COLUMNS = ("subDirectory_filePath", "expression", "valence", "arousal")


def affectnet(root: str | Path, split: str = "train", num_classes: int = 8,
              image_dir: str = "Manually_Annotated_Images",
              image_size: int = 112, on_bad_image: str = "error") -> FERDataset:
    """AffectNet's manually annotated ``train`` (``training.csv``) or ``val`` (``validation.csv``) split.

    Args:
        root: Folder with the two csv files and ``image_dir``.
        split: ``train`` or ``val``.
        num_classes: 8 (with contempt) or 7 (contempt rows dropped).
        image_dir: Image folder under ``root``.
        image_size: Side of the cached square uint8 images.
        on_bad_image: ``error`` or ``skip`` (see :class:`~ferlab.data.base.FERDataset`).

    Returns:
        A :class:`~ferlab.data.base.FERDataset` with ``va`` (N, 2) float valence and arousal.

    Raises:
        DatasetError: A missing file, column or image, or a value out of range (naming the line).
    """
    root = Path(root)
    if split not in CSV:
        raise DatasetError(f"AffectNet split must be one of {', '.join(sorted(CSV))}, got {split!r}")
    if num_classes not in (7, 8):
        raise DatasetError(f"num_classes must be 7 or 8, got {num_classes!r}")
    path = root / CSV[split]
    if not path.is_file():
        raise DatasetError(f"{path}: AffectNet label csv not found")
    paths, labels, va = [], [], []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}:1: missing columns {missing} (have {reader.fieldnames})")
        for lineno, row in enumerate(reader, 2):
            try:
                expr = int(row["expression"])
                v, a = float(row["valence"]), float(row["arousal"])
            except (TypeError, ValueError) as e:
                raise DatasetError(f"{path}:{lineno}: bad expression/valence/arousal ({e})") from e
            if not 0 <= expr <= 10:
                raise DatasetError(f"{path}:{lineno}: expression {expr} outside 0..10")
            if expr >= num_classes:
                continue
            for what, x in (("valence", v), ("arousal", a)):
                if not -1 <= x <= 1:    # also NaN
                    raise DatasetError(f"{path}:{lineno}: {what} {x} outside [-1, 1] for an image with "
                                       f"expression {expr}")
            paths.append(root / image_dir / row["subDirectory_filePath"])
            labels.append(expr)
            va.append((v, a))
    if not paths:
        raise DatasetError(f"{path}: no rows with an expression among the {num_classes} classes")
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise DatasetError(f"{absent[0]}: image listed in {path} not found ({len(absent)} missing)")
    classes = C.AFFECTNET8 if num_classes == 8 else C.AFFECTNET7
    return FERDataset(classes=classes, labels=np.array(labels), paths=paths, va=np.array(va, dtype=np.float32),
                      image_size=image_size, on_bad_image=on_bad_image, name=f"affectnet-{split}",
                      meta={"root": str(root / image_dir), "split": split})
