"""``ferlab figures``: rebuild figures from run directories (see :mod:`ferlab.figures`)."""
from __future__ import annotations


def cmd_figures(args) -> int:
    from ..figures import cmd_figures as run
    return run(args)


def add_parser(sub) -> None:
    fi = sub.add_parser("figures", help="rebuild the committed figures from run directories (+ manifest.json)")
    fi.add_argument("--runs", default="runs/ferplus-cpu", help="folder of <method>-<setting>-s<seed> runs")
    fi.add_argument("--out", default="figures")
    fi.add_argument("--only", nargs="+", help="figure names (curves-sym30, curves-fer2013, attention-sym30)")
    fi.set_defaults(func=cmd_figures)
