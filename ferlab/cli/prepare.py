"""``ferlab prepare``: write a dataset's folders from the files its authors publish."""
from __future__ import annotations

from .common import add_command

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {"prepare": "write a dataset's folders from its published files (ferplus: fer2013.csv + fer2013new.csv)"}

EXAMPLES = """examples:
  ferlab prepare ferplus --fer2013-csv fer2013.csv --ferplus-csv fer2013new.csv --out data/ferplus
  ferlab datasets ferplus --data-root data/ferplus --label-mode fer2013
  ferlab train --method baseline --dataset ferplus --data-root data/ferplus --label-mode fer2013

fer2013.csv: Kaggle's "Challenges in Representation Learning: Facial Expression Recognition
Challenge" (ICML 2013) data; fer2013new.csv: github.com/microsoft/FERPlus. The PNG folders and
label.csv files are those FERPlus' generate_training_data.py writes; fer2013_labels.csv holds the
original FER2013 label of every row (label_mode fer2013)."""


def _n(x: int) -> str:
    return f"{x:,}"


def cmd_prepare(args) -> int:
    """Run ``ferlab prepare ferplus``: write the FERPlus layout from fer2013.csv and fer2013new.csv
    (:func:`~ferlab.data.prepare_ferplus.prepare_ferplus`) and print what was written; returns the exit status 0."""
    from ..data.prepare_ferplus import prepare_ferplus
    done = prepare_ferplus(args.fer2013_csv, args.ferplus_csv, args.out, progress=not args.no_progress)
    for folder, c in done.splits.items():
        extra = [f"{_n(c['dropped'])} without an image name not written"] if c["dropped"] else []
        if c["written_twice"]:
            extra.append(f"{c['written_twice']} name(s) on two rows: the later row's image and votes")
        print(f"{folder}: {_n(c['images'])} PNG + label.csv from {_n(c['rows'])} rows"
              + (f" ({'; '.join(extra)})" if extra else ""))
    counts = ", ".join(f"{_n(v)} {k}" for k, v in done.statuses.items() if v)
    print(f"fer2013_labels.csv: {_n(done.rows)} rows ({counts})")
    if not done.full:
        print(f"note: {_n(done.rows)} rows, not the 35,887 of the full FER2013: a subset was prepared")
    print(f"-> {done.out}; check it with: ferlab datasets ferplus --data-root {done.out}")
    return 0


def add_parser(sub) -> None:
    """Register ``ferlab prepare`` and its options on the subparsers ``sub``."""
    p = add_command(sub, "prepare", COMMANDS["prepare"], EXAMPLES)
    p.add_argument("name", choices=("ferplus",),
                   help="dataset to prepare: ferplus (FER2013 images with FERPlus' 10 votes and the original "
                        "FER2013 labels)")
    p.add_argument("--fer2013-csv", dest="fer2013_csv", required=True, metavar="FILE",
                   help="Kaggle's fer2013.csv (emotion, pixels, Usage; 35,887 rows)")
    p.add_argument("--ferplus-csv", dest="ferplus_csv", required=True, metavar="FILE",
                   help="FERPlus' fer2013new.csv (Usage, Image name, 10 vote counts; one row per fer2013.csv "
                        "row, same order)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder to write FER2013Train/, FER2013Valid/, FER2013Test/ and fer2013_labels.csv into "
                        "(use it as --data-root)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)
