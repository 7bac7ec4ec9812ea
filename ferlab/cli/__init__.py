"""The ``ferlab`` command. One module per subcommand group, each with ``add_parser(sub)`` and
``COMMANDS`` (its command names and one-line helps, plain constants): :mod:`.train`, :mod:`.evaluate`
(eval, export), :mod:`.predict`, :mod:`.crop`, :mod:`.data` (noise, neighbors, landmarks, datasets), :mod:`.demo`,
:mod:`.figures`, :mod:`.audit`, :mod:`.prepare`, :mod:`.backbones`.

Only the command being run gets its full parser (choice lists come from the method, dataset and
backbone registries, which import torch); the others are listed by name and help, so ``ferlab
--help`` and ``ferlab --version`` start without torch."""
from __future__ import annotations

import argparse
import os
import sys

from . import audit, backbones, crop, data, demo, evaluate, figures, predict, prepare, train
from .common import DATASET_FLAGS
from .train import TRAIN_FLAGS, config_from_args

__all__ = ["DATASET_FLAGS", "TRAIN_FLAGS", "build_parser", "config_from_args", "main"]

SUBCOMMANDS = (train, evaluate, predict, crop, data, prepare, demo, figures, audit, backbones)


def command_of(argv) -> str | None:
    """The subcommand ``argv`` runs: its first word that is not an option (the top-level options
    ``--version``, ``--debug``, ``-h`` take no value), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The ``ferlab`` parser. With ``argv``, only the subcommand it runs is built in full and every
    other one is a stub (name and help, no options); without, every subcommand is built in full."""
    from .. import __version__
    from .common import Parser
    ap = Parser(prog="ferlab", description="Facial expression recognition under noisy labels.")
    ap.add_argument("--version", action="version", version=f"ferlab {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    command = None if argv is None else command_of(argv)
    for module in SUBCOMMANDS:
        if argv is None or command in module.COMMANDS:
            module.add_parser(sub)
        else:
            for name, help_ in module.COMMANDS.items():
                sub.add_parser(name, help=help_)
    return ap


def _add_debug_flag(ap: argparse.ArgumentParser) -> None:
    help_ = "on an error, show the Python traceback (also: FERLAB_DEBUG=1)"
    ap.add_argument("--debug", action="store_true", help=help_)
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                if not any("--debug" in a.option_strings for a in p._actions):
                    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=help_)


def _error_line(text: str) -> None:
    """``text`` and its newline in one write: the ranks of a torchrun job share stderr, and print's
    separate newline write let their lines run together."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv=None) -> int:
    """Run one ``ferlab`` command. A :class:`~ferlab.errors.UserError` (bad file, flag, config value,
    checkpoint, busy run directory, diverged training) is printed as one line ``ferlab <command>: error:
    ...`` and returns its exit code (2; 3 for a diverged run; 128 + the signal's number for a training run
    stopped by SIGTERM / SIGUSR1 / Ctrl-C, printed as ``ferlab train: stopped by ...``) -- ``--debug``
    or ``FERLAB_DEBUG=1`` re-raises it with its traceback. Any other exception is a bug and keeps its
    traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = build_parser(argv)
    _add_debug_flag(ap)
    args = ap.parse_args(argv)
    from ..errors import UserError
    debug = getattr(args, "debug", False) or os.environ.get("FERLAB_DEBUG", "0") not in ("", "0")
    try:
        return args.func(args)
    except UserError as e:
        if debug:
            raise
        if not e.quiet:
            _error_line(f"ferlab {args.command}: {e.prefix}{e}")
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        _error_line(f"ferlab {args.command}: interrupted")
        return 130
