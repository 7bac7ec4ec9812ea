"""Dataset tools: ``ferlab noise``, ``neighbors``, ``landmarks`` and ``datasets``."""
from __future__ import annotations

import os
from pathlib import Path

from .common import add_dataset_flags, add_split_flags, dataset_args


def cmd_noise(args) -> int:
    from ..data import build_dataset
    from ..data.noise import apply_noise, save_manifest
    ds_args = dataset_args(args)
    ds = build_dataset(args.dataset, args.data_root, args.split, **ds_args)
    man = apply_noise(ds, args.kind, args.rate, args.seed, noise_file=args.noise_file)
    names = ds.meta.get("names") or [f"{i:06d}" for i in range(len(ds))]
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
    import numpy as np

    from ..data.neighbors import build_neighbors, save_neighbors
    from ..engine.config import TrainConfig
    if args.config:
        from ..engine.trainer import build_train_set
        ds = build_train_set(TrainConfig.from_yaml(args.config, args.preset))[0]   # limit_train as the run has it
    else:
        from ..data import build_dataset
        ds_args = dataset_args(args)
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
        raise SystemExit(f"ferlab landmarks: {e}") from None
    names = [os.path.basename(p) for p in ds.paths] if ds.paths is not None else [str(i) for i in range(len(ds))]
    out = save_landmarks(args.out, lm["points"], lm["detected"], names, lm["meta"])
    m = lm["meta"]
    print(f"{ds.name}: {len(ds)} images, detector {m['detected']}, fallback box {m['fallback']} "
          f"({m['fallback_box']}), {m['seconds']} s -> {out}; use dataset_args.landmarks={out}")
    return 0


def cmd_datasets(args) -> int:
    from ..data import DATASETS, build_dataset, find_data_root
    if not args.name:
        for name in sorted(DATASETS):
            root = find_data_root(name) if name != "synthetic" else "(generated)"
            print(f"{name:10s} {root or '-'}")
        return 0
    splits = {"ferplus": ["train", "val", "test"], "rafdb": ["train", "test"], "affectnet": ["train", "val"],
              "fer2013": ["train", "val", "test"], "synthetic": ["train", "val", "test"]}.get(args.name, ["train"])
    ds_args = dataset_args(args)
    for split in splits:
        ds = build_dataset(args.name, args.root, split, **ds_args)
        counts = dict(zip(ds.classes, ds.class_counts().tolist()))
        print(f"{args.name} {split}: {len(ds)} images, {ds.num_classes} classes {counts}")
    return 0


def add_parser(sub) -> None:
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
    add_dataset_flags(no)
    no.set_defaults(func=cmd_noise)

    nb = sub.add_parser("neighbors", help="K nearest training samples in a label-free space (LDLVA's knn)")
    nb.add_argument("--config", help="recipe / run config: its training set (limit_train applied)")
    nb.add_argument("--preset")
    add_split_flags(nb, "synthetic", "without --config")
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
    add_split_flags(lm, "ferplus")
    lm.add_argument("--detect-size", type=int, default=144, help="upscale images to this side for the detector")
    lm.add_argument("--fallback-box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                    help="face box (fractions of the image) where no face is found (default: the median detection)")
    lm.add_argument("--out", required=True, help="output .npz")
    lm.add_argument("--no-progress", action="store_true")
    lm.set_defaults(func=cmd_landmarks)

    ds = sub.add_parser("datasets", help="list datasets, or validate a root and count its splits")
    ds.add_argument("name", nargs="?")
    ds.add_argument("--root")
    add_dataset_flags(ds)
    ds.set_defaults(func=cmd_datasets)
