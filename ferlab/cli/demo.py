"""``ferlab demo``: CE on synthetic faces with 30% symmetric noise."""
from __future__ import annotations


def cmd_demo(args) -> int:
    from ..demo import run_demo
    run_demo(epochs=args.epochs, device=args.device, out_dir=args.out_dir, clean_reference=not args.no_reference)
    return 0


def add_parser(sub) -> None:
    de = sub.add_parser("demo", help="CE on synthetic faces with 30%% symmetric noise (CPU, minutes)")
    de.add_argument("--epochs", type=int, default=None)
    de.add_argument("--device", default="auto")
    de.add_argument("--out-dir", dest="out_dir", default="runs")
    de.add_argument("--no-reference", action="store_true", help="skip the clean-label reference run")
    de.set_defaults(func=cmd_demo)
