"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned/*_aligned.jpg``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import classes as C
from .base import FERDataset
from .errors import DatasetError

LABEL_FILE = "EmoLabel/list_patition_label.txt"


def read_label_list(path: Path, num_classes: int = 7) -> list[tuple[str, int]]:
    """Parse ``<name>.jpg <label>`` lines (1-based labels) -> [(name, 0-based label)]; a name
    listed twice is an error naming both lines."""
    return [(name, lab) for _, name, lab in _read_rows(Path(path), num_classes)]


def _read_rows(path: Path, num_classes: int) -> list[tuple[int, str, int]]:
    """(line number, name, 0-based label) of a label list."""
    if not path.is_file():
        raise DatasetError(f"{path}: label file not found" if not path.is_dir() else f"{path}: a directory, "
                           f"expected a '<name> <label>' label file")
    rows, first = [], {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DatasetError(f"{path}:{lineno}: expected '<name>.jpg <label>', got {line.strip()!r}")
            try:
                lab = int(parts[1])
            except ValueError as e:
                raise DatasetError(f"{path}:{lineno}: label {parts[1]!r} is not an integer") from e
            if not 1 <= lab <= num_classes:
                raise DatasetError(f"{path}:{lineno}: label {lab} outside 1..{num_classes} (RAF-DB labels are 1-based)")
            if parts[0] in first:
                before = first[parts[0]]
                raise DatasetError(f"{path}:{lineno}: {parts[0]} is listed again (first on line {before[0]}"
                                   + (f" with label {before[1] + 1}, here {lab})" if before[1] != lab - 1 else ")"))
            first[parts[0]] = (lineno, lab - 1)
            rows.append((lineno, parts[0], lab - 1))
    return rows


def write_label_list(path: Path, rows: list[tuple[str, int]]) -> None:
    """Write [(name, 0-based label)] in the 1-based EAC/RAF-DB format."""
    from ..atomic import write_text_atomic
    write_text_atomic("".join(f"{n} {lab + 1}\n" for n, lab in rows), path)


def rafdb(root: str | Path, split: str = "train", noise_file: str | Path | None = None,
          image_size: int = 100, on_bad_image: str = "error") -> FERDataset:
    """Load RAF-DB basic. ``noise_file``: an EAC ``noise0X.txt`` (train rows only,
    same format) whose labels replace the training labels; test labels always come
    from the clean list."""
    root = Path(root)
    if split not in ("train", "test"):
        raise DatasetError(f"RAF-DB split must be 'train' or 'test', got {split!r}")
    every = _read_rows(root / LABEL_FILE, 7)
    odd = [(line, name) for line, name, _ in every if not name.startswith(("train", "test"))]
    if odd:
        raise DatasetError(f"{root / LABEL_FILE}:{odd[0][0]}: image {odd[0][1]!r} is neither a train_ nor a "
                           f"test_ image (RAF-DB names start with the split)")
    rows = [(name, lab) for _, name, lab in every if name.startswith(split)]
    if not rows:
        raise DatasetError(f"{root / LABEL_FILE}: no rows whose name starts with {split!r}")
    names = [n for n, _ in rows]
    clean = np.array([lab for _, lab in rows])
    labels = clean
    if noise_file is not None and split == "train":
        noisy = dict(read_label_list(Path(noise_file)))
        absent = [n for n in names if n not in noisy]
        if absent:
            raise DatasetError(f"{noise_file}: no label for {len(absent)} training images, e.g. {absent[0]}")
        labels = np.array([noisy[n] for n in names])
    paths = [root / "Image" / "aligned" / (n.split(".")[0] + "_aligned.jpg") for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: image listed in {root / LABEL_FILE} not found ({len(missing)} missing)")
    return FERDataset(classes=C.RAFDB, labels=labels, clean_labels=clean, paths=paths, image_size=image_size,
                      on_bad_image=on_bad_image, name=f"rafdb-{split}",
                      meta={"root": str(root), "split": split, "noise_file": str(noise_file) if noise_file else None,
                            "names": names})
