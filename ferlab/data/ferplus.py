"""FERPlus (Microsoft layout) with majority / votes / original-FER2013 label modes.

Layout::

    ROOT/FER2013{Train,Valid,Test}/*.png + label.csv
    ROOT/fer2013_labels.csv    (label_mode="fer2013" only: columns image_name, fer2013_emotion[, status];
                                the original FER2013 label of each FERPlus image, joined by image name)

``label.csv`` (no header) rows: ``name,"(x, y, w, h)",n0..n9`` -- votes for neutral, happiness,
surprise, sadness, anger, disgust, fear, contempt, unknown, NF. ``fer2013new.csv`` is not read:
``ferlab prepare ferplus`` writes all of ``ROOT`` from Kaggle's ``fer2013.csv`` and FERPlus'
``fer2013new.csv`` (:mod:`ferlab.data.prepare_ferplus`).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .. import classes as C
from .base import FERDataset
from .errors import DatasetError

SPLITS = {"train": "FER2013Train", "val": "FER2013Valid", "valid": "FER2013Valid", "test": "FER2013Test"}
USAGE = {"FER2013Train": "Training", "FER2013Valid": "PublicTest", "FER2013Test": "PrivateTest"}
LABEL_MODES = ("majority", "votes", "fer2013")
MAJORITY_RULES = ("ferplus", "plurality")


def read_votes(label_csv: Path) -> tuple[list[str], np.ndarray]:
    """Parse a FERPlus ``label.csv``: names and (N, 10) int votes."""
    if not label_csv.is_file():
        raise DatasetError(f"{label_csv}: FERPlus label file not found")
    names, votes = [], []
    with open(label_csv, newline="", encoding="utf-8", errors="replace") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if len(row) != 12:
                raise DatasetError(f"{label_csv}:{lineno}: expected 12 columns "
                                   f"(name, box, 10 vote counts), got {len(row)}")
            try:
                v = [int(x) for x in row[2:]]
            except ValueError as e:
                raise DatasetError(f"{label_csv}:{lineno}: vote counts must be integers ({e})") from e
            if min(v) < 0:
                raise DatasetError(f"{label_csv}:{lineno}: negative vote count")
            names.append(row[0])
            votes.append(v)
    if not names:
        raise DatasetError(f"{label_csv}: no rows (an empty FERPlus label file)")
    return names, np.asarray(votes, dtype=np.int64).reshape(-1, 10)


def majority_labels(votes: np.ndarray, rule: str = "ferplus") -> np.ndarray:
    """Majority label index into the 10 vote columns, ``-1`` where there is none.

    ``ferplus``: the FERPlus generator's MV rule -- single votes are treated as
    outliers (set to 0), then the top class needs more than half of the remaining
    votes. ``plurality``: the unique arg-max of the raw votes (ties -> -1).
    Rows whose majority is unknown/NF are returned as -1.
    """
    if rule == "ferplus":
        v = np.where(votes <= 1, 0, votes)
        top = v.argmax(1)
        ok = v.max(1) > 0.5 * v.sum(1)
    elif rule == "plurality":
        top = votes.argmax(1)
        ok = (votes == votes.max(1, keepdims=True)).sum(1) == 1
    else:
        raise DatasetError(f"majority_rule must be one of {', '.join(MAJORITY_RULES)}, got {rule!r}")
    out = np.where(ok & (top < 8), top, -1)
    return out


def read_fer2013_table(root: Path) -> dict[str, int]:
    """Map FERPlus image name -> original FER2013 label (FER2013 index order).

    Read from ``ROOT/fer2013_labels.csv``: columns ``image_name``, ``fer2013_emotion`` and, when
    present, ``status`` (rows ``no_pixels`` skipped); ``ferlab prepare ferplus`` writes it as
    ``row, usage, image_name, fer2013_emotion, status``, the csv rows joined to the FERPlus file
    names by position -- FERPlus file names are not csv row numbers. Names whose label is unknown
    (``-1``) map to -1.
    """
    table = root / "fer2013_labels.csv"
    if not table.is_file():
        raise DatasetError(f"{table}: needed for label_mode='fer2013' (the original FER2013 label of every image; "
                           f"`ferlab prepare ferplus` writes it from fer2013.csv and fer2013new.csv)")
    out: dict[str, int] = {}
    with open(table, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        need = {"image_name", "fer2013_emotion"}
        if not need <= set(reader.fieldnames or []):
            raise DatasetError(f"{table}:1: header must contain {sorted(need)}, got {reader.fieldnames}")
        for lineno, row in enumerate(reader, 2):
            name = row["image_name"].strip()
            if not name:
                continue
            try:
                lab = int(row["fer2013_emotion"])
            except ValueError as e:
                raise DatasetError(f"{table}:{lineno}: fer2013_emotion must be an integer") from e
            if not -1 <= lab <= 6:
                raise DatasetError(f"{table}:{lineno}: fer2013_emotion {lab} outside -1..6")
            if row.get("status") == "no_pixels":
                continue  # the earlier row of a name FERPlus wrote twice: its PNG holds the later row
            out[name] = lab
    return out


_PIXEL_HASHES: dict[str, set[str]] = {}


def pixel_hashes(paths) -> list[str]:
    """SHA-1 of each image's decoded pixels (lossless PNGs: equal pixels <=> equal hash)."""
    import hashlib

    from PIL import Image
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(hashlib.sha1(im.convert("L").tobytes() + bytes(str(im.size), "ascii")).hexdigest())
    return out


def train_pixel_hashes(root: Path) -> set[str]:
    """Pixel hashes of every FER2013Train image listed in its label.csv (cached per process)."""
    folder = Path(root) / SPLITS["train"]
    key = str(folder.resolve())
    if key not in _PIXEL_HASHES:
        names, _ = read_votes(folder / "label.csv")
        _PIXEL_HASHES[key] = set(pixel_hashes(folder / n for n in names))
    return _PIXEL_HASHES[key]


def ferplus(root: str | Path, split: str = "train", label_mode: str = "majority", num_classes: int = 7,
            majority_rule: str = "ferplus", drop_unlabeled: bool = True, image_size: int = 48,
            on_bad_image: str = "error", exclude_train_duplicates: bool = False) -> FERDataset:
    """Load one FERPlus split.

    Args:
        label_mode: ``majority`` (MV label), ``votes`` (``soft_label`` = normalised votes
            over the classes, ``label`` = majority), ``fer2013`` (``label`` = the
            original FER2013 label; real label noise).
        num_classes: 7 (basic emotions; contempt rows dropped) or 8.
        drop_unlabeled: drop rows without a training label (no majority, contempt in
            7-class mode, unknown FER2013 label). ``False`` keeps every image with ``-1``.
        exclude_train_duplicates: for ``val`` / ``test``, drop images whose pixels also occur in
            FER2013Train (FER2013 has exact duplicates across splits); the count is in
            ``meta["removed_train_duplicates"]``. Ignored for ``train``.
    ``clean_label`` is always the majority label.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"FERPlus split must be one of {', '.join(sorted(SPLITS))}, got {split!r}")
    if label_mode not in LABEL_MODES:
        raise DatasetError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}")
    if num_classes not in (7, 8):
        raise DatasetError(f"num_classes must be 7 or 8, got {num_classes!r}")
    if majority_rule not in MAJORITY_RULES:
        raise DatasetError(f"majority_rule must be one of {', '.join(MAJORITY_RULES)}, got {majority_rule!r}")
    folder = root / SPLITS[split]
    if not folder.is_dir():
        raise DatasetError(f"{folder}: FERPlus split folder not found (expected ROOT/{SPLITS[split]}/)")
    names, votes = read_votes(folder / "label.csv")
    classes = C.FERPLUS7 if num_classes == 7 else C.FERPLUS8
    majority = C.remap(majority_labels(votes, majority_rule), C.FERPLUS_VOTES, classes)
    soft = votes[:, :num_classes].astype(np.float32)
    soft = soft / np.maximum(soft.sum(1, keepdims=True), 1)
    if label_mode == "fer2013":
        table = read_fer2013_table(root)
        missing = [n for n in names if n not in table]
        if missing:
            raise DatasetError(f"{root / 'fer2013_labels.csv'}: no row for {len(missing)} images "
                               f"of {folder}, e.g. {missing[0]}")
        labels = C.remap([table[n] for n in names], C.FER2013, classes)
    else:
        labels = majority
    keep = np.flatnonzero(labels >= 0) if drop_unlabeled else np.arange(len(names))
    paths = [folder / n for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: image listed in {folder / 'label.csv'} not found "
                           f"({len(missing)} missing)")
    removed = 0
    if exclude_train_duplicates and split != "train":
        seen = train_pixel_hashes(root)
        dup = np.array([h in seen for h in pixel_hashes(paths[i] for i in keep)], dtype=bool)
        removed = int(dup.sum())
        keep = keep[~dup]
    return FERDataset(
        classes=classes, labels=labels[keep], clean_labels=majority[keep],
        soft_labels=soft[keep] if label_mode == "votes" else None,
        paths=[paths[i] for i in keep], image_size=image_size, on_bad_image=on_bad_image,
        name=f"ferplus-{split}-{label_mode}",
        meta={"root": str(root), "split": split, "label_mode": label_mode, "majority_rule": majority_rule,
              "names": [names[i] for i in keep], "votes_total": len(names),
              "removed_train_duplicates": removed},
    )
