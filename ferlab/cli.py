"""The ``ferlab`` command: train, eval, noise, datasets, demo."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from .engine.config import TrainConfig

# flag -> TrainConfig field, for `ferlab train`
TRAIN_FLAGS = {
    "method": str, "dataset": str, "data_root": str, "backbone": str, "weights": str, "input_size": int,
    "epochs": int, "batch_size": int, "optimizer": str, "lr": float, "weight_decay": float, "scheduler": str,
    "gamma": float, "noise": str, "noise_rate": float, "noise_seed": int, "noise_file": str, "seed": int,
    "device": str, "amp": str, "channels_last": str, "cache": str, "name": str, "out_dir": str,
    "limit_train": int, "limit_eval": int, "checkpoint_every": int, "log_every": int, "mean_last_k": int,
    "train_fit_every": int, "sampler": str, "optimizer_impl": str,
}
DATASET_FLAGS = {"label_mode": str, "num_classes": int, "image_size": int, "majority_rule": str}


def _parse_value(text: str):
    return yaml.safe_load(text)


def config_from_args(args) -> TrainConfig:
    from .engine.config import TrainConfig
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
            d[target][rest[0]] = _parse_value(val)
        else:
            d[key] = _parse_value(val)
    if args.no_progress:
        d["progress"] = False
    return TrainConfig.from_dict(d)


def cmd_train(args) -> int:
    from .engine.trainer import fit
    cfg = config_from_args(args)
    summary = fit(cfg, resume=args.resume)
    p = summary["protocol"]
    if p:
        print(f"test accuracy: last {p['last']:.4f} | mean of last {p['k']} {p['mean_last_k']:.4f} | "
              f"at best val {p.get('best_val', float('nan')):.4f}")
    print(f"run directory: {summary['run']}")
    return 0


def cmd_eval(args) -> int:
    from .engine.trainer import evaluate_checkpoint
    path = Path(args.run)
    ck = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ck.is_file():
        raise SystemExit(f"{ck}: no checkpoint (give a run directory or a .pt file)")
    overrides = {}
    for item in args.dataset_arg or []:
        key, sep, val = item.partition("=")
        if not sep:
            raise SystemExit(f"--dataset-arg expects KEY=VALUE, got {item!r}")
        overrides[key] = _parse_value(val)
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
    from .engine.trainer import load_run_method
    from .models.export import save_inference_model
    path = Path(args.run)
    ck = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ck.is_file():
        raise SystemExit(f"{ck}: no checkpoint (give a run directory or a .pt file)")
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


def cmd_noise(args) -> int:
    from .data import build_dataset
    from .data.noise import apply_noise, save_manifest
    ds_args = _dataset_args(args)
    ds = build_dataset(args.dataset, args.data_root, args.split, **ds_args)
    man = apply_noise(ds, args.kind, args.rate, args.seed, noise_file=args.noise_file)
    names = ds.meta.get("names") or [f"{i:06d}" for i in range(len(ds))]
    if args.out:
        from .data.rafdb import write_label_list
        write_label_list(Path(args.out), list(zip(names, ds.labels.tolist())))
        man["labels_file"] = str(args.out)
    manifest_path = Path(args.manifest or (str(args.out) + ".json" if args.out else "noise.json"))
    save_manifest(man, manifest_path)
    print(f"{args.kind} noise on {ds.name}: asked {args.rate:.3f}, realised {man['realised_rate']:.4f} "
          f"({man['num_flipped']}/{man['num_samples']} flipped); manifest {manifest_path}"
          + (f"; labels {args.out} (EAC format, 1-based)" if args.out else ""))
    return 0


def cmd_neighbors(args) -> int:
    import numpy as np

    from .data.neighbors import build_neighbors, save_neighbors
    from .engine.config import TrainConfig
    if args.config:
        from .engine.trainer import build_train_set
        ds = build_train_set(TrainConfig.from_yaml(args.config, args.preset))[0]   # limit_train as the run has it
    else:
        from .data import build_dataset
        ds_args = _dataset_args(args)
        ds = build_dataset(args.dataset, args.data_root, args.split, **ds_args)
    if args.space == "features":
        ds.preload(progress=not args.no_progress)
    coords = np.load(args.coordinates) if args.coordinates else None
    try:
        nb = build_neighbors(ds, args.space, args.k, scale=args.scale, checkpoint=args.checkpoint, coordinates=coords,
                             device=args.device, progress=not args.no_progress)
    except ValueError as e:
        raise SystemExit(f"ferlab neighbors: {e}") from None
    out = save_neighbors(nb, args.out)
    print(f"{ds.name}: {len(nb['knn'])} samples x {args.k} neighbours in space {args.space} (scale {nb['scale']:.4g}, "
          f"mean similarity {nb['similarity'].mean():.3f}) -> {out}; use method_args.neighbors={out}")
    return 0


def cmd_landmarks(args) -> int:
    from .data import build_dataset
    from .data.landmarks import detect_landmarks, save_landmarks
    ds_args = _dataset_args(args)
    if args.dataset == "ferplus":   # landmarks need no label: every image of the split, for every label mode
        ds_args["drop_unlabeled"] = False
    ds = build_dataset(args.dataset, args.data_root, args.split, **ds_args)
    ds.preload(progress=not args.no_progress)
    try:
        lm = detect_landmarks(ds, detect_size=args.detect_size, fallback_box=args.fallback_box,
                              progress=not args.no_progress)
    except ImportError as e:
        raise SystemExit(f"ferlab landmarks: {e}") from None
    names = [os.path.basename(p) for p in ds.paths] if ds.paths is not None else [str(i) for i in range(len(ds))]
    out = save_landmarks(args.out, lm["points"], lm["detected"], names, lm["meta"])
    m = lm["meta"]
    print(f"{ds.name}: {len(ds)} images, detector {m['detected']}, fallback box {m['fallback']} "
          f"({m['fallback_box']}), {m['seconds']} s -> {out}; use dataset_args.landmarks={out}")
    return 0


def cmd_datasets(args) -> int:
    from .data import DATASETS, build_dataset, find_data_root
    if not args.name:
        for name in sorted(DATASETS):
            root = find_data_root(name) if name != "synthetic" else "(generated)"
            print(f"{name:10s} {root or '-'}")
        return 0
    splits = {"ferplus": ["train", "val", "test"], "rafdb": ["train", "test"], "affectnet": ["train", "val"],
              "fer2013": ["train", "val", "test"], "synthetic": ["train", "val", "test"]}.get(args.name, ["train"])
    ds_args = _dataset_args(args)
    for split in splits:
        ds = build_dataset(args.name, args.root, split, **ds_args)
        counts = dict(zip(ds.classes, ds.class_counts().tolist()))
        print(f"{args.name} {split}: {len(ds)} images, {ds.num_classes} classes {counts}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    run_demo(epochs=args.epochs, device=args.device, out_dir=args.out_dir, clean_reference=not args.no_reference)
    return 0


def _dataset_args(args) -> dict:
    """The dataset options given on the command line (``_add_dataset_flags``)."""
    return {k: getattr(args, k) for k in DATASET_FLAGS if getattr(args, k) is not None}


def _add_split_flags(p, dataset: str, dataset_help: str | None = None):
    """--dataset / --data-root / --split plus the dataset options: commands that read one split."""
    p.add_argument("--dataset", default=dataset, help=dataset_help)
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--split", default="train")
    _add_dataset_flags(p)


def _add_dataset_flags(p):
    p.add_argument("--label-mode", dest="label_mode", help="FERPlus: majority | votes | fer2013")
    p.add_argument("--num-classes", dest="num_classes", type=int, help="FERPlus/AffectNet: 7 or 8")
    p.add_argument("--image-size", dest="image_size", type=int, help="side of the cached uint8 images")
    p.add_argument("--majority-rule", dest="majority_rule", help="FERPlus: ferplus (default) | plurality")


def cmd_figures(args) -> int:
    from .figures import cmd_figures as run
    return run(args)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ferlab", description="Facial expression recognition under noisy labels.")
    sub = ap.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train a method (works under torchrun)")
    tr.add_argument("--config", help="YAML config or recipe (recipes/<method>/<dataset>.yaml)")
    tr.add_argument("--preset", help="preset inside a recipe (paper | cpu)")
    for key, typ in TRAIN_FLAGS.items():
        tr.add_argument("--" + key.replace("_", "-"), dest=key, type=typ)
    _add_dataset_flags(tr)
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key, e.g. method_args.label_smoothing=0.1")
    tr.add_argument("--resume", action="store_true", help="continue runs/<name>/checkpoints/last.pt if it exists")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=cmd_train)

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

    no = sub.add_parser("noise", help="write noisy training labels + manifest")
    no.add_argument("--dataset", required=True)
    no.add_argument("--data-root", dest="data_root")
    no.add_argument("--split", default="train")
    no.add_argument("--kind", default="symmetric", help="symmetric | asymmetric | from_file")
    no.add_argument("--rate", type=float, default=0.3)
    no.add_argument("--seed", type=int, default=0)
    no.add_argument("--noise-file", dest="noise_file", help="with --kind from_file")
    no.add_argument("--out", help="write the noisy labels here (EAC noise0X.txt format)")
    no.add_argument("--manifest", help="manifest JSON path (default: OUT.json or noise.json)")
    _add_dataset_flags(no)
    no.set_defaults(func=cmd_noise)

    nb = sub.add_parser("neighbors", help="K nearest training samples in a label-free space (LDLVA's knn)")
    nb.add_argument("--config", help="recipe / run config: its training set (limit_train applied)")
    nb.add_argument("--preset")
    _add_split_flags(nb, "synthetic", "without --config")
    nb.add_argument("--space", default="va", choices=("va", "landmarks", "features", "pseudo_va"))
    nb.add_argument("--checkpoint", help="space features: a ferlab run checkpoint")
    nb.add_argument("--coordinates", help="space pseudo_va: .npy (N, 2) predicted valence/arousal")
    nb.add_argument("-k", "--k", type=int, default=8)
    nb.add_argument("--scale", type=float,
                    help="a_ij = exp(-d / scale) (default 0.5 for VA, mean K-NN distance otherwise)")
    nb.add_argument("--device", default="cpu")
    nb.add_argument("--out", required=True, help="output .npz")
    nb.add_argument("--no-progress", action="store_true")
    nb.set_defaults(func=cmd_neighbors)

    lm = sub.add_parser("landmarks", help="detect 68 facial landmarks of every image of a split (offline, dlib)")
    _add_split_flags(lm, "ferplus")
    lm.add_argument("--detect-size", type=int, default=144, help="upscale images to this side for the detector")
    lm.add_argument("--fallback-box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                    help="face box (fractions of the image) where no face is found (default: the median detection)")
    lm.add_argument("--out", required=True, help="output .npz")
    lm.add_argument("--no-progress", action="store_true")
    lm.set_defaults(func=cmd_landmarks)

    ds = sub.add_parser("datasets", help="list datasets, or validate a root and count its splits")
    ds.add_argument("name", nargs="?")
    ds.add_argument("--root")
    _add_dataset_flags(ds)
    ds.set_defaults(func=cmd_datasets)

    de = sub.add_parser("demo", help="CE on synthetic faces with 30%% symmetric noise (CPU, minutes)")
    de.add_argument("--epochs", type=int, default=None)
    de.add_argument("--device", default="auto")
    de.add_argument("--out-dir", dest="out_dir", default="runs")
    de.add_argument("--no-reference", action="store_true", help="skip the clean-label reference run")
    de.set_defaults(func=cmd_demo)

    fi = sub.add_parser("figures", help="rebuild the committed figures from run directories (+ manifest.json)")
    fi.add_argument("--runs", default="runs/ferplus-cpu", help="folder of <method>-<setting>-s<seed> runs")
    fi.add_argument("--out", default="figures")
    fi.add_argument("--only", nargs="+", help="figure names (curves-sym30, curves-fer2013, attention-sym30)")
    fi.set_defaults(func=cmd_figures)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .data.errors import DatasetError
    from .models.weights import WeightsError
    try:
        return args.func(args)
    except (DatasetError, WeightsError) as e:
        print(f"ferlab {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
