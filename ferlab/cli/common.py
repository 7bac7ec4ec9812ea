"""Pieces every ``ferlab`` subcommand shares: the parser and help format, dataset flags, device
and KEY=VALUE parsing."""
from __future__ import annotations

import argparse
import sys

import yaml


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default appended to its help (unless the help says it, or there is none to show:
    ``None`` / off flags), epilog examples kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" not in text and action.default not in (None, False, argparse.SUPPRESS) \
                and (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An argument error (unknown choice, bad value, missing argument) is one line on stderr,
    ``ferlab <command>: error: <message> (see ferlab <command> --help)``, and exit status 2."""

    def error(self, message: str):
        """Print the one-line error and exit with status 2."""
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def add_command(sub, name: str, help: str, epilog: str | None = None, description: str | None = None):
    """A subcommand parser with :class:`HelpFormatter`, ``help`` as its description, ``epilog`` examples."""
    return sub.add_parser(name, help=help, description=description or help, epilog=epilog,
                          formatter_class=HelpFormatter)


def device_arg(text: str) -> str:
    """``--device`` values: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``; CUDA ones only when a GPU is there."""
    import torch
    kind, _, index = text.partition(":")
    if kind not in ("auto", "cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (auto, cpu, cuda, cuda:N, mps)")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available (torch sees no CUDA device; "
                                             f"use cpu or auto)")
        if index and int(index) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available")
    return text

DATASET_FLAGS = {"label_mode": str, "num_classes": int, "image_size": int, "majority_rule": str}


def parse_value(text: str, what: str = "value"):
    """A command-line value as YAML: ``0.1`` -> float, ``true`` -> bool, ``[1, 2]`` -> list;
    a :class:`~ferlab.errors.ConfigError` naming ``what`` when it is not valid YAML."""
    from ..errors import ConfigError
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{what}: {text!r} is not a valid value ({problem}; quote strings, write lists "
                          f"as [1, 2])") from None


def parse_key_value(item: str, flag: str) -> tuple[str, object]:
    """``KEY=VALUE`` of a repeatable flag (``--set``, ``--dataset-arg``) -> (KEY, parsed VALUE)."""
    from ..errors import ConfigError
    key, sep, val = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
    return key.strip(), parse_value(val, f"{flag} {item}")


def dataset_args(args) -> dict:
    """The dataset options given on the command line (``add_dataset_flags``)."""
    return {k: getattr(args, k) for k in DATASET_FLAGS if getattr(args, k) is not None}


def dataset_names() -> list[str]:
    """The registered dataset names, sorted (the ``--dataset`` choices)."""
    from ..data.registry import DATASETS
    return sorted(DATASETS)


def add_split_flags(p, dataset: str, dataset_help: str | None = None):
    """--dataset / --data-root / --split plus the dataset options: commands that read one split."""
    p.add_argument("--dataset", default=dataset, choices=dataset_names(),
                   help=f"registered dataset{' (' + dataset_help + ')' if dataset_help else ''}")
    add_root_flag(p)
    p.add_argument("--split", default="train", help="split to read (train | val | test; folder: a sub-folder)")
    add_dataset_flags(p)


def add_root_flag(p, flag: str = "--data-root"):
    """Add the dataset-root option ``flag`` (``--data-root`` stores ``data_root``, any other flag ``root``) to ``p``."""
    p.add_argument(flag, dest="data_root" if flag == "--data-root" else "root", metavar="DIR",
                   help="dataset root (folder: DIR/<split>/<class>/*.jpg); default: $FERLAB_DATA/<dataset> "
                        "or ../shared/data/<dataset>")


def add_dataset_flags(p):
    """The dataset options (``dataset_args``) as flags; a dataset that takes none of them says so."""
    p.add_argument("--label-mode", dest="label_mode", choices=("majority", "votes", "fer2013"),
                   help="FERPlus labels: majority vote, vote distribution, or the original FER2013 labels "
                        "(default: majority)")
    p.add_argument("--num-classes", dest="num_classes", type=int, choices=(7, 8),
                   help="FERPlus / AffectNet: 7 or 8 (with contempt) classes (default: FERPlus 7, AffectNet 8)")
    p.add_argument("--image-size", dest="image_size", type=int,
                   help="side of the cached uint8 images (default: the dataset's, e.g. FERPlus 48, folder 112)")
    p.add_argument("--majority-rule", dest="majority_rule", choices=("ferplus", "plurality"),
                   help="FERPlus majority: the FERPlus rule (> 50%% of votes, single votes dropped) or plurality "
                        "(default: ferplus)")
