"""``ferlab figures``: figures from any run directories, or the FERPlus grid (see :mod:`ferlab.figures`)."""
from __future__ import annotations

import argparse
import sys

from .common import HelpFormatter, add_command

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {"figures": "figures from run directories: `figures KIND RUN...` for any runs, or the FERPlus grid's "
                       "figures with --runs"}

EXAMPLES = """examples:
  ferlab figures curves runs/baseline-faces runs/eac-faces --out figures-faces
  ferlab figures attention runs/baseline-faces runs/eac-faces --out figures-faces
  ferlab figures confusion runs/eac-faces --out figures-faces --name eac-confusion
  ferlab figures umap runs/eac-faces            # signals / umap need noisy runs (--noise ...)
  ferlab figures --runs runs/ferplus-cpu --out figures                  # every FERPlus grid figure
  ferlab figures --runs runs/ferplus-cpu --out figures --only attention-sym30"""

KIND_HELP = {
    "curves": "test accuracy per epoch and the fit of the flipped / intact training labels, one line per run",
    "attention": "classifier CAM of each run on the original / flipped / erased view of one test image per class",
    "umap": "UMAP of each run's training features, coloured by the noisy and the clean label",
    "signals": "each run's own noise signal on intact vs flipped training labels, with AUROC",
    "confusion": "row-normalised test confusion matrix (last epoch) of each run",
}


def cmd_figures(args) -> int:
    """Run ``ferlab figures``: one figure of the given runs (``KIND RUN...``), or every grid figure
    whose runs exist in ``--runs``. Returns the exit status: 0, or 1 when grid figures lack runs
    (listed on stderr with the command that trains them).

    Raises:
        UserError: The ``--runs`` folder does not exist.
    """
    if args.kind:
        from ..figures import figure_from_runs
        out = getattr(args, "out", None) or "figures"
        command = " ".join(["ferlab", "figures", args.kind, *args.run_dirs, "--out", out])
        entry = figure_from_runs(args.kind, args.run_dirs, out, args.name, command)
        print(f"wrote {', '.join(entry['files'])} ({len(entry['runs'])} runs; manifest {out}/manifest.json)")
        return 0
    from pathlib import Path

    from ..errors import UserError
    from ..figures import build_figures
    if not Path(args.runs).is_dir():
        raise UserError(f"{args.runs}: no such folder of grid runs; for runs of your own use "
                        f"`ferlab figures {{{','.join(KIND_HELP)}}} RUN...`")
    out = args.out or "figures"
    result = build_figures(args.runs, out, args.only)
    for name, absent in result["missing"].items():
        methods = sorted({r.split("-")[0] for r in absent})
        settings = sorted({r.split("-")[1] for r in absent})
        print(f"{name}: missing runs {absent} in {args.runs}; train them with\n"
              f"  python benchmarks/run_grid.py --methods {' '.join(methods)} --settings {' '.join(settings)}",
              file=sys.stderr)
    print(f"wrote {out}/manifest.json ({len(result['built'])} figures)")
    return 0 if not result["missing"] else 1


def add_parser(sub) -> None:
    """Register ``ferlab figures`` and its options on the subparsers ``sub``."""
    from ..figures import KINDS, registry
    fi = add_command(sub, "figures", COMMANDS["figures"], EXAMPLES)
    fi.add_argument("--runs", default="runs/ferplus-cpu",
                    help="grid mode: folder of <method>-<setting>-s<seed> runs (benchmarks/run_grid.py)")
    fi.add_argument("--out", default=None, metavar="DIR", help="output folder (default: figures)")
    fi.add_argument("--only", nargs="+", choices=[f.name for f in registry()], metavar="NAME",
                    help="grid mode: only these figures, of: " + ", ".join(f.name for f in registry()))
    kinds = fi.add_subparsers(dest="kind", metavar="KIND", title="figures of any runs (KIND RUN... --out DIR)")
    for kind in KINDS:
        k = kinds.add_parser(kind, help=KIND_HELP[kind], description=KIND_HELP[kind], formatter_class=HelpFormatter,
                             epilog=f"example:\n  ferlab figures {kind} RUN_A RUN_B --out figures-mine")
        k.add_argument("run_dirs", nargs="+", metavar="RUN", help="run directories (runs/<name>)")
        k.add_argument("--out", default=argparse.SUPPRESS, metavar="DIR", help="output folder (default: figures)")
        k.add_argument("--name", help=f"file stem (default: {kind})")
    fi.set_defaults(func=cmd_figures, kind=None)
