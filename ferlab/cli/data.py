"""Dataset tools: ``ferlab noise``, ``neighbors``, ``landmarks`` and ``datasets``."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    add_command,
    add_dataset_flags,
    add_root_flag,
    add_split_flags,
    dataset_args,
    dataset_names,
    device_arg,
)

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists), in order
COMMANDS = {
    "noise": "write noisy training labels + manifest",
    "neighbors": "K nearest training samples in a label-free space (LDLVA's knn)",
    "landmarks": "detect 68 facial landmarks of every image of a split (offline, dlib)",
    "datasets": "list datasets, or validate a root and count every split",
}



def cmd_noise(args) -> int:
    """Run ``ferlab noise``: draw noisy labels for a dataset split, write their manifest (and with
    ``--out`` the labels) and print the realised rate; returns the exit status."""
    from ..data import build_dataset
    from ..data.noise import apply_noise, save_manifest
    from ..errors import ConfigError
    if not 0 <= args.rate <= 1:
        raise ConfigError(f"--rate: must be in [0, 1], got {args.rate}")
    if args.kind == "from_file" and not args.noise_file:
        raise ConfigError("--kind from_file needs --noise-file FILE ('<image name> <1-based label>' lines)")
    ds_args = dataset_args(args)
    ds = build_dataset(args.dataset, args.data_root, args.split, **ds_args)
    man = apply_noise(ds, args.kind, args.rate, args.seed, noise_file=args.noise_file)
    names = ds.sample_names()
    if args.out:
        from ..data.rafdb import write_label_list
        write_label_list(Path(args.out), list(zip(names, ds.labels.tolist())))
        man["labels_file"] = str(args.out)
    manifest_path = Path(args.manifest or (str(args.out) + ".json" if args.out else "noise.json"))
    save_manifest(man, manifest_path)
    print(f"{args.kind} noise on {ds.name}: asked {args.rate:.3f}, realised {man['realised_rate']:.4f} "
          f"({man['num_flipped']}/{man['num_samples']} flipped); manifest {manifest_path}"
          + (f"; labels {args.out} (EAC format, 1-based)" if args.out else ""))
    return 0


def cmd_neighbors(args) -> int:
    """Run ``ferlab neighbors``: build the K-nearest-neighbour file of a training set (LDLVA);
    returns the exit status."""
    from ..data.neighbors import load_coordinates, save_neighbors
    from ..engine.config import TrainConfig
    from ..engine.neighbors import build_neighbors
    if args.config:
        from ..engine.run_data import build_train_set
        ds = build_train_set(TrainConfig.from_yaml(args.config, args.preset))[0]   # limit_train as the run has it
    else:
        from ..data import build_dataset
        ds_args = dataset_args(args)
        ds = build_dataset(args.dataset, args.data_root, args.split, **ds_args)
    if args.space == "features":
        ds.preload(progress=not args.no_progress)
    coords = load_coordinates(args.coordinates) if args.coordinates else None
    nb = build_neighbors(ds, args.space, args.k, scale=args.scale, checkpoint=args.checkpoint, coordinates=coords,
                         device=args.device, progress=not args.no_progress)
    out = save_neighbors(nb, args.out)
    print(f"{ds.name}: {len(nb['knn'])} samples x {args.k} neighbours in space {args.space} (scale {nb['scale']:.4g}, "
          f"mean similarity {nb['similarity'].mean():.3f}) -> {out}; use method_args.neighbors={out}")
    return 0


def cmd_landmarks(args) -> int:
    """Run ``ferlab landmarks``: detect facial landmarks of every image of a split and write them;
    returns the exit status."""
    from ..data import build_dataset
    from ..data.landmarks import detect_landmarks, save_landmarks
    ds_args = dataset_args(args)
    if args.dataset == "ferplus":   # landmarks need no label: every image of the split, for every label mode
        ds_args["drop_unlabeled"] = False
    ds = build_dataset(args.dataset, args.data_root, args.split, **ds_args)
    ds.preload(progress=not args.no_progress)
    try:
        lm = detect_landmarks(ds, detect_size=args.detect_size, fallback_box=args.fallback_box,
                              progress=not args.no_progress)
    except ImportError as e:
        from ..errors import UserError
        raise UserError(str(e)) from None
    out = save_landmarks(args.out, lm["points"], lm["detected"], ds.sample_names(), lm["meta"])
    m = lm["meta"]
    print(f"{ds.name}: {len(ds)} images, detector {m['detected']}, fallback box {m['fallback']} "
          f"({m['fallback_box']}), {m['seconds']} s -> {out}; use dataset_args.landmarks={out}")
    return 0


def cmd_datasets(args) -> int:
    """Run ``ferlab datasets``: list the registered datasets and their roots, or one dataset's
    splits and class counts; returns the exit status."""
    from ..data import DATASETS, build_dataset, find_data_root
    if not args.name:
        for name in sorted(DATASETS):
            root = find_data_root(name) if name != "synthetic" else "(generated)"
            print(f"{name:10s} {root or '-'}")
        return 0
    from ..data.registry import dataset_splits
    splits = dataset_splits(args.name, args.data_root or find_data_root(args.name))
    ds_args = dataset_args(args)
    for split in splits:
        ds = build_dataset(args.name, args.data_root, split, **ds_args)
        counts = dict(zip(ds.classes, ds.class_counts().tolist()))
        print(f"{args.name} {split}: {len(ds)} images, {ds.num_classes} classes {counts}")
    return 0


NOISE_EXAMPLES = """examples:
  ferlab noise --dataset ferplus --kind symmetric --rate 0.3 --seed 0 --out noisy.txt
  ferlab noise --dataset folder --data-root faces --rate 0.3 --out faces-noise30.txt
  ferlab train --dataset folder --data-root faces --noise from_file --noise-file faces-noise30.txt"""
NEIGHBORS_EXAMPLES = """examples:
  ferlab neighbors --dataset synthetic --space va --out knn.npz
  ferlab neighbors --config recipes/ldlva/ferplus.yaml --preset cpu --space features \\
                   --checkpoint runs/ferplus-cpu/baseline-sym30-s0/checkpoints/last.pt --out knn.npz"""
LANDMARKS_EXAMPLES = """examples:
  ferlab landmarks --dataset ferplus --split train --out landmarks/ferplus-train.npz
  ferlab landmarks --dataset folder --data-root faces --split train --out faces-train-landmarks.npz"""
DATASETS_EXAMPLES = """examples:
  ferlab datasets                          # registered datasets and where their data was found
  ferlab datasets ferplus                  # validate a root and count every split
  ferlab datasets folder --data-root faces # your own DIR/<split>/<class>/*.jpg"""


def add_parser(sub) -> None:
    """Register ``ferlab noise``, ``neighbors``, ``landmarks`` and ``datasets`` on the subparsers ``sub``."""
    no = add_command(sub, "noise", COMMANDS["noise"], NOISE_EXAMPLES)
    no.add_argument("--dataset", required=True, choices=dataset_names(), help="registered dataset")
    add_root_flag(no)
    no.add_argument("--split", default="train", help="split whose labels are made noisy")
    no.add_argument("--kind", default="symmetric", choices=("symmetric", "asymmetric", "from_file"),
                    help="symmetric: flip to a uniformly drawn other class; asymmetric: class pairs; "
                         "from_file: the labels of --noise-file")
    no.add_argument("--rate", type=float, default=0.3, help="share of labels to flip")
    no.add_argument("--seed", type=int, default=0, help="seed of the draw (same seed, same labels everywhere)")
    no.add_argument("--noise-file", dest="noise_file", metavar="FILE",
                    help="--kind from_file: '<image name> <1-based label>' lines")
    no.add_argument("--out", metavar="FILE", help="write the noisy labels here, '<image name> <1-based label>' "
                                                 "(EAC noise0X.txt format; folder: names are <class>/<file>)")
    no.add_argument("--manifest", metavar="FILE", help="manifest JSON path (default: OUT.json or noise.json)")
    add_dataset_flags(no)
    no.set_defaults(func=cmd_noise)

    nb = add_command(sub, "neighbors", COMMANDS["neighbors"], NEIGHBORS_EXAMPLES)
    nb.add_argument("--config", metavar="YAML", help="recipe / run config: its training set (limit_train applied)")
    nb.add_argument("--preset", help="preset of the --config recipe")
    add_split_flags(nb, "synthetic", "without --config")
    nb.add_argument("--space", default="va", choices=("va", "landmarks", "features", "pseudo_va"),
                    help="valence/arousal, landmarks, a checkpoint's features, or predicted VA coordinates")
    nb.add_argument("--checkpoint", help="space features: a ferlab run checkpoint")
    nb.add_argument("--coordinates", help="space pseudo_va: .npy (N, 2) predicted valence/arousal")
    nb.add_argument("-k", "--k", type=int, default=8, help="neighbours per sample")
    nb.add_argument("--scale", type=float,
                    help="a_ij = exp(-d / scale) (default 0.5 for VA, mean K-NN distance otherwise)")
    nb.add_argument("--device", type=device_arg, default="cpu", help="where features are computed (space features)")
    nb.add_argument("--out", required=True, help="output .npz")
    nb.add_argument("--no-progress", action="store_true", help="no progress bars")
    nb.set_defaults(func=cmd_neighbors)

    lm = add_command(sub, "landmarks", COMMANDS["landmarks"], LANDMARKS_EXAMPLES)
    add_split_flags(lm, "ferplus")
    lm.add_argument("--detect-size", type=int, default=144, help="upscale images to this side for the detector")
    lm.add_argument("--fallback-box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                    help="face box (fractions of the image) where no face is found (default: the median detection)")
    lm.add_argument("--out", required=True, help="output .npz")
    lm.add_argument("--no-progress", action="store_true", help="no progress bars")
    lm.set_defaults(func=cmd_landmarks)

    ds = add_command(sub, "datasets", COMMANDS["datasets"], DATASETS_EXAMPLES)
    ds.add_argument("name", nargs="?", choices=dataset_names(), help="dataset to validate (default: list them all)")
    add_root_flag(ds)
    ds.add_argument("--root", dest="data_root", metavar="DIR", help=argparse.SUPPRESS)   # the earlier spelling
    add_dataset_flags(ds)
    ds.set_defaults(func=cmd_datasets)
