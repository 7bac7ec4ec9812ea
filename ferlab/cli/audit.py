"""``ferlab audit``: rank a training set by how suspicious each label looks.

    ferlab audit RUN [RUN ...] --out DIR [--signal NAME] [--top-k 48]
    ferlab audit --cleanlab RUN --folds K --out DIR [train flags]
    ferlab audit --cleanlab --config RECIPE --preset P --folds K --out DIR [train flags]

The first form ranks by each run's noise signal (several runs: rank averaging, ``ferlab.audit.ranking``).
``--cleanlab`` trains K fold runs of RUN's config (or of a recipe + the same flags as ``ferlab train``)
as ``<out-dir>/<name>-fold<i>of<K>``, resumably, and feeds their out-of-sample probabilities to
``cleanlab.filter.find_label_issues`` (extra ``ferlab[audit]``). Both write the same CSV, a contact
sheet of the top-k images and a summary JSON into DIR.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .common import DATASET_FLAGS, HelpFormatter
from .train import TRAIN_FLAGS, add_train_flags

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {"audit": "rank the training labels by suspicion (noise signals of runs, or cleanlab)"}


EXAMPLES = """examples:
  ferlab audit runs/ferplus-cpu/baseline-fer2013-s0 --out audit-baseline
  ferlab audit runs/ferplus-cpu/{rul,ldlva}-fer2013-s0 --out audit-rank-average   # rank averaging of two runs
  ferlab audit --cleanlab runs/ferplus-cpu/baseline-fer2013-s0 --folds 5 --out audit-cleanlab
  ferlab audit --cleanlab --config recipes/baseline/ferplus.yaml --preset cpu --label-mode fer2013 \\
               --folds 5 --out audit-cleanlab"""


def _train_flags_given(args) -> list[str]:
    keys = [k for k in (*TRAIN_FLAGS, *DATASET_FLAGS) if getattr(args, k) is not None and k != "device"]
    return ["--" + k.replace("_", "-") for k in keys] + ["--config"] * bool(args.config) + \
        ["--preset"] * bool(args.preset) + ["--set"] * bool(args.set)


def _cleanlab_config(args):
    from ..audit import AuditError
    from .train import config_from_args
    if len(args.runs) > 1:
        raise AuditError(f"--cleanlab takes one run (its config is trained in folds), got {len(args.runs)}")
    if args.runs and args.config:
        raise AuditError("give a RUN or --config, not both")
    if not args.runs and not args.config:
        raise AuditError("--cleanlab needs a RUN (its config.yaml) or --config RECIPE [--preset P]")
    if args.runs:
        run = Path(args.runs[0])
        if not (run / "config.yaml").is_file():
            raise AuditError(f"{run}: no config.yaml (give a run directory)")
        args.config = str(run / "config.yaml")
        if args.out_dir is None:
            args.out_dir = str(run.parent)      # folds beside the run, whatever the cwd was at training
        if args.name is None:
            args.name = run.name
    return config_from_args(args)


def cmd_audit(args) -> int:
    """Run ``ferlab audit``: rank the training labels of the given runs by their noise signals, or
    (``--cleanlab``) train k fold runs and rank with cleanlab on their out-of-sample
    probabilities; write the report files. Returns the exit status 0.

    Raises:
        AuditError: Bad flags (training flags without ``--cleanlab``, no runs, ``--folds`` < 2).
    """
    from ..audit import AuditError, audit_runs, cleanlab_audit, cross_val_probs, write_report
    command = "ferlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["audit"] else None
    if args.cleanlab:
        from ..audit import require_cleanlab
        require_cleanlab()              # before hours of fold training, not after
        if args.folds < 2:
            raise AuditError(f"--folds must be >= 2, got {args.folds}")
        cfg = _cleanlab_config(args)
        cv = cross_val_probs(cfg, args.folds, args.fold_seed, device=args.device or cfg.device)
        audit = cleanlab_audit(cv["dataset"], cv["probs"], filter_by=args.filter_by, source={
            "folds": args.folds, "fold_seed": args.fold_seed, "fold_runs": [str(r) for r in cv["runs"]],
            "method": cfg.method, "train_time_s": sum(cv["train_time_s"])})
    else:
        given = _train_flags_given(args)
        if given:
            raise AuditError(f"{', '.join(given)}: training flags apply with --cleanlab only")
        if not args.runs:
            raise AuditError("give one or more run directories (or --cleanlab)")
        audit = audit_runs(args.runs, signal=args.signal, device=args.device or "auto",
                           progress=not args.no_progress)
    info = write_report(audit, args.out, top_k=args.top_k, command=command)
    how = audit.source.get("combine") or audit.source.get("rank")
    print(f"ranked {info['n']} training labels ({how})")
    if "flagged" in info:
        print(f"cleanlab flags {info['flagged']} of {info['n']} labels")
    ref = info.get("against_reference_labels")
    if ref:
        print(f"against the dataset's reference labels ({ref['n_wrong']} of {ref['n']} differ): "
              f"AUROC {ref['auroc']:.3f}, average precision {ref['average_precision']:.3f}")
    for f in info["files"].values():
        print(f"wrote {f}")
    return 0


def add_parser(sub) -> None:
    """Register ``ferlab audit`` and its options on the subparsers ``sub``."""
    p = sub.add_parser("audit", help=COMMANDS["audit"],
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN", help="run directories trained on the same training set")
    p.add_argument("--out", required=True, help="output folder (CSV, contact sheet, summary JSON)")
    p.add_argument("--signal", help="signal to rank every run by (e.g. label_loss); default: each method's own")
    p.add_argument("--top-k", dest="top_k", type=int, default=48, help="images on the contact sheet (default 48)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    cl = p.add_argument_group("cleanlab (extra ferlab[audit])")
    cl.add_argument("--cleanlab", action="store_true", help="K-fold out-of-sample probabilities -> find_label_issues")
    cl.add_argument("--folds", type=int, default=5, help="K (default 5)")
    cl.add_argument("--fold-seed", dest="fold_seed", type=int, default=0, help="seed of the stratified fold split")
    cl.add_argument("--filter-by", dest="filter_by", default="prune_by_noise_rate",
                    help="cleanlab find_label_issues filter_by (default prune_by_noise_rate)")
    tr = p.add_argument_group("training of the folds (--cleanlab; as ferlab train)")
    tr.add_argument("--config", help="YAML config or recipe")
    tr.add_argument("--preset", help="preset inside a recipe")
    add_train_flags(tr)
    p.set_defaults(func=cmd_audit)
