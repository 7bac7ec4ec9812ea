"""``ferlab eval`` and ``ferlab export``: a saved run on one split, or its standalone inference model."""
from __future__ import annotations

import json
from pathlib import Path

from .common import parse_key_value

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {
    "eval": "evaluate a run's checkpoint on one split",
    "export": "write a run's standalone inference model (plain backbone + classifier, e.g. DMUE's target branch) "
              "with its classes and transform",
}

def cmd_eval(args) -> int:
    """Run ``ferlab eval``: evaluate a run's checkpoint on a split and print the report; returns the exit status."""
    from ..engine.checkpoint import run_checkpoint
    from ..engine.trainer import evaluate_checkpoint
    ck = run_checkpoint(args.run)
    overrides = {}
    for item in args.dataset_arg or []:
        key, val = parse_key_value(item, "--dataset-arg")
        overrides[key] = val
    rep = evaluate_checkpoint(ck, args.split, args.device, progress=not args.no_progress, dataset_args=overrides,
                              amp=args.amp)
    if args.json:
        print(json.dumps(rep))
    else:
        removed = rep.get("removed_train_duplicates")
        print(f"{args.split} ({rep['split']}, {rep['n']} images"
              + (f", {removed} train duplicates removed" if removed else "") + f"): accuracy {rep['acc']:.4f}, "
              f"mean class accuracy {rep['mean_class_acc']:.4f}")
    return 0


def cmd_export(args) -> int:
    """Run ``ferlab export``: write a run's standalone inference model; returns the exit status."""
    from ..engine import checkpoint as ckpt
    from ..engine.trainer import method_from_state
    from ..models.export import save_inference_model
    from ..predictor import checkpoint_metadata
    ck = ckpt.run_checkpoint(args.run)
    state = ckpt.load_run_state(ck)
    method, cfg, _ = method_from_state(state, "cpu", source=str(ck))
    classes, image_size = checkpoint_metadata(state)
    try:
        net = method.export_inference_model()
    except NotImplementedError as e:
        from ..errors import UserError
        raise UserError(f"{ck}: {e}") from None
    out = Path(args.out or (ck.parent.parent / "inference.pt"))
    save_inference_model(net, out, backbone=cfg.backbone, method=cfg.method, input_size=cfg.input_size,
                         mean=list(method.mean), std=list(method.std), dataset=cfg.dataset, source=str(ck),
                         classes=classes, image_size=image_size, framing=state.get("framing"))
    n_full = sum(p.numel() for p in method.parameters())
    n_net = sum(p.numel() for p in net.parameters())
    print(f"wrote {out}: {cfg.method} -> {type(net).__name__} {cfg.backbone} ({n_net / 1e6:.2f}M parameters, "
          f"training model {n_full / 1e6:.2f}M), classes {classes}; predict with `ferlab predict {out} "
          f"IMAGES` or ferlab.predictor.Predictor.load")
    return 0


EVAL_EXAMPLES = """examples:
  ferlab eval runs/eac-faces --split test
  ferlab eval runs/eac-faces/checkpoints/best.pt --split val --json
  ferlab eval runs/ferplus-cpu/eac-sym30-s0 --dataset-arg exclude_train_duplicates=true"""
EXPORT_EXAMPLES = """examples:
  ferlab export runs/eac-faces --out eac-faces.pt
  ferlab predict eac-faces.pt new_faces/ --out preds.csv"""


def add_parser(sub) -> None:
    """Register ``ferlab eval`` and ``ferlab export`` on the subparsers ``sub``."""
    from .common import add_command, device_arg
    ev = add_command(sub, "eval", COMMANDS["eval"], EVAL_EXAMPLES)
    ev.add_argument("run", help="run directory (its checkpoints/last.pt) or a checkpoint file (e.g. best.pt)")
    ev.add_argument("--split", default="test",
                    help="test | val (the run's own; val may be its --val-fraction hold-out) | a dataset split name")
    ev.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N | mps")
    ev.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE",
                    help="override an evaluation dataset argument, e.g. exclude_train_duplicates=true (FERPlus)")
    ev.add_argument("--amp", default="run", choices=("run", "auto", "bf16", "fp16", "off"),
                    help="autocast of the network: run (default) = the precision the run was trained in, so the "
                         "accuracy equals the logged one; auto = bf16 where the device computes it natively, else "
                         "float32")
    ev.add_argument("--json", action="store_true", help="print the report (accuracy, confusion, ...) as JSON")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_eval)

    ex = add_command(sub, "export", COMMANDS["export"], EXPORT_EXAMPLES)
    ex.add_argument("run", help="run directory or checkpoint file")
    ex.add_argument("--out", metavar="FILE", help="output file (default: RUN/inference.pt)")
    ex.set_defaults(func=cmd_export)
