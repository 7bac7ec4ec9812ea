"""``ferlab eval`` and ``ferlab export``: a saved run on one split, or its standalone inference model."""
from __future__ import annotations

import json
from pathlib import Path

from .common import parse_value


def checkpoint_path(run: str) -> Path:
    """A run directory or a checkpoint file -> the checkpoint file (exits with a message if there is none)."""
    path = Path(run)
    ck = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ck.is_file():
        raise SystemExit(f"{ck}: no checkpoint (give a run directory or a .pt file)")
    return ck


def cmd_eval(args) -> int:
    from ..engine.trainer import evaluate_checkpoint
    ck = checkpoint_path(args.run)
    overrides = {}
    for item in args.dataset_arg or []:
        key, sep, val = item.partition("=")
        if not sep:
            raise SystemExit(f"--dataset-arg expects KEY=VALUE, got {item!r}")
        overrides[key] = parse_value(val)
    rep = evaluate_checkpoint(ck, args.split, args.device, progress=not args.no_progress, dataset_args=overrides)
    if args.json:
        print(json.dumps(rep))
    else:
        removed = rep.get("removed_train_duplicates")
        print(f"{args.split} ({rep['split']}, {rep['n']} images"
              + (f", {removed} train duplicates removed" if removed else "") + f"): accuracy {rep['acc']:.4f}, "
              f"mean class accuracy {rep['mean_class_acc']:.4f}")
    return 0


def cmd_export(args) -> int:
    from ..engine.trainer import load_run_method
    from ..models.export import save_inference_model
    ck = checkpoint_path(args.run)
    method, cfg, _ = load_run_method(ck, "cpu")
    try:
        net = method.export_inference_model()
    except NotImplementedError as e:
        raise SystemExit(f"ferlab export: {e}") from None
    out = Path(args.out or (ck.parent.parent / "inference.pt"))
    save_inference_model(net, out, backbone=cfg.backbone, method=cfg.method, input_size=cfg.input_size,
                         mean=list(method.mean), std=list(method.std), dataset=cfg.dataset, source=str(ck))
    n_full = sum(p.numel() for p in method.parameters())
    n_net = sum(p.numel() for p in net.parameters())
    print(f"wrote {out}: {cfg.method} -> {type(net).__name__} {cfg.backbone} ({n_net / 1e6:.2f}M parameters, "
          f"training model {n_full / 1e6:.2f}M); load with ferlab.models.export.load_inference_model")
    return 0


def add_parser(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a run's checkpoint on one split")
    ev.add_argument("run", help="run directory or checkpoint file")
    ev.add_argument("--split", default="test", help="test | val | a dataset split name")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE",
                    help="override an evaluation dataset argument, e.g. exclude_train_duplicates=true (FERPlus)")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=cmd_eval)

    ex = sub.add_parser("export", help="write a run's standalone inference model (plain ResNet, e.g. DMUE's target branch)")
    ex.add_argument("run", help="run directory or checkpoint file")
    ex.add_argument("--out", help="output file (default: RUN/inference.pt)")
    ex.set_defaults(func=cmd_export)
