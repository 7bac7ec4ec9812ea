"""``ferlab demo``: CE on synthetic faces with 30% symmetric noise."""
from __future__ import annotations

from .common import add_command, device_arg

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {"demo": "CE on synthetic faces with 30%% symmetric noise (CPU, minutes)"}   # %% : argparse's %


EXAMPLES = """examples:
  ferlab demo                       # ~3 min on 2 free CPU cores, both runs
  ferlab demo --no-reference --epochs 3
  ferlab demo --threads 2 --device cpu"""


def cmd_demo(args) -> int:
    """Run ``ferlab demo`` (:func:`ferlab.demo.run_demo`); returns the exit status 0."""
    from ..demo import run_demo
    run_demo(epochs=args.epochs, device=args.device, out_dir=args.out_dir, clean_reference=not args.no_reference,
             threads=args.threads)
    return 0


def add_parser(sub) -> None:
    """Register ``ferlab demo`` and its options on the subparsers ``sub``."""
    de = add_command(sub, "demo", COMMANDS["demo"], EXAMPLES)
    from ..demo import DEMO
    de.add_argument("--epochs", type=int, default=None, metavar="N", help=f"epochs per run (default: {DEMO['epochs']})")
    de.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N | mps")
    de.add_argument("--out-dir", dest="out_dir", default="runs", metavar="DIR", help="folder of the run folders")
    de.add_argument("--threads", type=int, metavar="N",
                    help="torch CPU threads (default: the CPUs this process may use minus the load average, "
                         "1 to 4)")
    de.add_argument("--no-reference", action="store_true", help="skip the clean-label reference run")
    de.set_defaults(func=cmd_demo)
