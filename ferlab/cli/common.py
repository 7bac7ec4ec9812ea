"""Pieces every ``ferlab`` subcommand shares: dataset flags and KEY=VALUE parsing."""
from __future__ import annotations

import yaml

DATASET_FLAGS = {"label_mode": str, "num_classes": int, "image_size": int, "majority_rule": str}


def parse_value(text: str):
    """A command-line value as YAML: ``0.1`` -> float, ``true`` -> bool, ``[1, 2]`` -> list."""
    return yaml.safe_load(text)


def dataset_args(args) -> dict:
    """The dataset options given on the command line (``add_dataset_flags``)."""
    return {k: getattr(args, k) for k in DATASET_FLAGS if getattr(args, k) is not None}


def add_split_flags(p, dataset: str, dataset_help: str | None = None):
    """--dataset / --data-root / --split plus the dataset options: commands that read one split."""
    p.add_argument("--dataset", default=dataset, help=dataset_help)
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--split", default="train")
    add_dataset_flags(p)


def add_dataset_flags(p):
    p.add_argument("--label-mode", dest="label_mode", help="FERPlus: majority | votes | fer2013")
    p.add_argument("--num-classes", dest="num_classes", type=int, help="FERPlus/AffectNet: 7 or 8")
    p.add_argument("--image-size", dest="image_size", type=int, help="side of the cached uint8 images")
    p.add_argument("--majority-rule", dest="majority_rule", help="FERPlus: ferplus (default) | plurality")
