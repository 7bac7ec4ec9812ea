"""The ``ferlab`` command. One module per subcommand group, each with ``add_parser(sub)``:
:mod:`.train`, :mod:`.evaluate` (eval, export), :mod:`.data` (noise, neighbors, landmarks,
datasets), :mod:`.figures`, :mod:`.demo`."""
from __future__ import annotations

import argparse
import sys

from . import audit, data, demo, evaluate, figures, train
from .common import DATASET_FLAGS
from .train import TRAIN_FLAGS, config_from_args

__all__ = ["DATASET_FLAGS", "TRAIN_FLAGS", "build_parser", "config_from_args", "main"]

SUBCOMMANDS = (train, evaluate, data, demo, figures, audit)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ferlab", description="Facial expression recognition under noisy labels.")
    sub = ap.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.errors import DatasetError
    from ..models.weights import WeightsError
    try:
        return args.func(args)
    except (DatasetError, WeightsError) as e:
        print(f"ferlab {args.command}: error: {e}", file=sys.stderr)
        return 2
