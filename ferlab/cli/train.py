"""``ferlab train``: build a TrainConfig from a recipe, flags and ``--set``, then fit."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .common import DATASET_FLAGS, add_dataset_flags, parse_value

if TYPE_CHECKING:
    from ..engine.config import TrainConfig

# flag -> TrainConfig field, for `ferlab train`
TRAIN_FLAGS = {
    "method": str, "dataset": str, "data_root": str, "backbone": str, "weights": str, "input_size": int,
    "epochs": int, "batch_size": int, "optimizer": str, "lr": float, "weight_decay": float, "scheduler": str,
    "gamma": float, "noise": str, "noise_rate": float, "noise_seed": int, "noise_file": str, "seed": int,
    "device": str, "amp": str, "channels_last": str, "cache": str, "name": str, "out_dir": str,
    "limit_train": int, "limit_eval": int, "checkpoint_every": int, "log_every": int, "mean_last_k": int,
    "train_fit_every": int, "sampler": str, "optimizer_impl": str,
}


def config_from_args(args) -> TrainConfig:
    from ..engine.config import TrainConfig
    cfg = TrainConfig.from_yaml(args.config, args.preset) if args.config else TrainConfig()
    d = cfg.to_dict()
    for key in TRAIN_FLAGS:
        val = getattr(args, key)
        if val is not None:
            d[key] = val
    ds_args = dict(d.get("dataset_args") or {})
    for key in DATASET_FLAGS:
        val = getattr(args, key)
        if val is not None:
            ds_args[key] = val
    d["dataset_args"] = ds_args
    for item in args.set or []:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        key, val = item.split("=", 1)
        target, *rest = key.split(".")
        if rest:
            d.setdefault(target, {}) or d.__setitem__(target, {})
            d[target][rest[0]] = parse_value(val)
        else:
            d[key] = parse_value(val)
    if args.no_progress:
        d["progress"] = False
    return TrainConfig.from_dict(d)


def cmd_train(args) -> int:
    from ..engine.trainer import fit
    cfg = config_from_args(args)
    summary = fit(cfg, resume=args.resume)
    p = summary["protocol"]
    if p:
        print(f"test accuracy: last {p['last']:.4f} | mean of last {p['k']} {p['mean_last_k']:.4f} | "
              f"at best val {p.get('best_val', float('nan')):.4f}")
    print(f"run directory: {summary['run']}")
    return 0


def add_parser(sub) -> None:
    tr = sub.add_parser("train", help="train a method (works under torchrun)")
    tr.add_argument("--config", help="YAML config or recipe (recipes/<method>/<dataset>.yaml)")
    tr.add_argument("--preset", help="preset inside a recipe (paper | cpu)")
    for key, typ in TRAIN_FLAGS.items():
        tr.add_argument("--" + key.replace("_", "-"), dest=key, type=typ)
    add_dataset_flags(tr)
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. method_args.label_smoothing=0.1")
    tr.add_argument("--resume", action="store_true", help="continue runs/<name>/checkpoints/last.pt if it exists")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)
