"""``build_dataset(name, root, split, **options)`` and data-root discovery."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .affectnet import affectnet
from .errors import DatasetError
from .fer2013 import fer2013_csv, fer2013_folder
from .ferplus import ferplus
from .folder import folder_splits, image_folder
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
#: the options each dataset's loader takes (besides ``landmarks``, which every dataset takes)
_LOADERS: dict[str, tuple[Callable, ...]] = {"synthetic": (synthetic,), "ferplus": (ferplus,), "rafdb": (rafdb,),
                                             "fer2013": (fer2013_csv, fer2013_folder), "affectnet": (affectnet,),
                                             "folder": (image_folder,)}
#: the splits each dataset ships (``folder``: the split sub-folders of its root, :func:`dataset_splits`)
SPLITS = {"ferplus": ("train", "val", "test"), "rafdb": ("train", "test"), "affectnet": ("train", "val"),
          "fer2013": ("train", "val", "test"), "synthetic": ("train", "val", "test")}
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


def dataset_options(name: str) -> list[str]:
    """The keyword options dataset ``name`` takes (``dataset_args`` keys), sorted."""
    import inspect
    skip = {"root", "split", "path", "name"}
    opts = {"landmarks"}
    for fn in _LOADERS.get(name, ()):
        opts |= {p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in skip}
    return sorted(opts)


def dataset_splits(name: str, root: str | Path | None = None) -> tuple[str, ...]:
    """The splits of dataset ``name``; for ``folder``, the split sub-folders present under ``root``."""
    if name == "folder":
        if root is None:
            raise DatasetError("dataset 'folder' needs a root (--data-root / --root DIR with DIR/train/<class>/...)")
        splits = folder_splits(root)
        if not splits:
            raise DatasetError(f"{root}: no split folder holding class folders (expected {root}/train/<class>/*.jpg)")
        return splits
    return SPLITS.get(name, ("train",))


def dataset_has_split(name: str, split: str, root: str | Path | None = None) -> bool:
    """Whether dataset ``name`` (built in, or ``folder`` under ``root``) has ``split``; ``valid`` is
    an alias of ``val`` except for ``folder``."""
    splits = dataset_splits(name, root)
    return split in splits or (split == "valid" and "val" in splits and name != "folder")


def build_dataset(name: str, root: str | Path | None = None, split: str = "train", **options):
    """Build a registered dataset. ``root=None`` looks the data up with :func:`find_data_root`;
    ``landmarks=FILE`` attaches a landmark file (:mod:`ferlab.data.landmarks`) to the split."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    if root is None and name != "synthetic":
        root = find_data_root(name)
        if root is None:
            raise DatasetError(f"no root given for dataset {name!r} and none found: pass --data-root "
                               f"or set FERLAB_DATA to a folder containing {DEFAULT_SUBDIR.get(name, name)}/")
    unknown = sorted(set(options) - set(dataset_options(name))) if name in _LOADERS else []
    if unknown:
        raise DatasetError(f"dataset {name!r} takes no option {', '.join(unknown)} (dataset_args / flags); "
                           f"it takes: {', '.join(dataset_options(name))}")
    if name in SPLITS and not dataset_has_split(name, split):
        raise DatasetError(f"dataset {name!r} has no split {split!r}; its splits: {', '.join(SPLITS[name])}")
    if root is not None and not Path(root).exists():
        raise DatasetError(f"{root}: dataset root of {name!r} not found")
    landmarks = options.pop("landmarks", None)
    ds = DATASETS[name](root, split=split, **options)
    if len(ds) == 0:
        raise DatasetError(f"{root or name}: split {split!r} of dataset {name!r} has no images")
    if landmarks:
        from .landmarks import attach_landmarks
        attach_landmarks(ds, landmarks)
    return ds
