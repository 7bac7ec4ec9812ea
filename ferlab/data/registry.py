"""``build_dataset(name, root, split, **options)`` and data-root discovery."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .affectnet import affectnet
from .errors import DatasetError
from .fer2013 import fer2013_csv, fer2013_folder
from .ferplus import ferplus
from .folder import image_folder
from .rafdb import rafdb
from .synthetic import synthetic


def _fer2013(root, split="train", **kw):
    root = Path(root)
    csv = root if root.suffix == ".csv" else root / "fer2013.csv"
    if csv.is_file():
        return fer2013_csv(csv, split, **kw)
    return fer2013_folder(root, split, **kw)


DATASETS: dict[str, Callable] = {
    "synthetic": lambda root=None, split="train", **kw: synthetic(split, **kw),
    "ferplus": ferplus,
    "rafdb": rafdb,
    "fer2013": _fer2013,
    "affectnet": affectnet,
    "folder": lambda root, split="train", **kw: image_folder(Path(root) / split, **kw),
}
#: sub-folder of FERLAB_DATA (or ../shared/data) where each dataset is looked for
DEFAULT_SUBDIR = {"ferplus": "ferplus", "rafdb": "raf-basic", "fer2013": "fer2013", "affectnet": "affectnet"}


def find_data_root(name: str) -> Path | None:
    """``$FERLAB_DATA/<name>``, else ``../shared/data/<name>`` above the working directory
    or this package; ``None`` when absent."""
    sub = DEFAULT_SUBDIR.get(name, name)
    candidates = []
    if os.environ.get("FERLAB_DATA"):
        base = Path(os.environ["FERLAB_DATA"])
        candidates += [base / sub, base]
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for parent in [start, *start.parents]:
            candidates.append(parent / "shared" / "data" / sub)
    for c in candidates:
        if c.is_dir() and c.name == sub:
            return c
    return None


def build_dataset(name: str, root: str | Path | None = None, split: str = "train", **options):
    """Build a registered dataset. ``root=None`` looks the data up with :func:`find_data_root`;
    ``landmarks=FILE`` attaches a landmark file (:mod:`ferlab.data.landmarks`) to the split."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    if root is None and name != "synthetic":
        root = find_data_root(name)
        if root is None:
            raise DatasetError(f"no root given for dataset {name!r} and none found: pass --data-root "
                               f"or set FERLAB_DATA to a folder containing {DEFAULT_SUBDIR.get(name, name)}/")
    landmarks = options.pop("landmarks", None)
    ds = DATASETS[name](root, split=split, **options)
    if landmarks:
        from .landmarks import attach_landmarks
        attach_landmarks(ds, landmarks)
    return ds
