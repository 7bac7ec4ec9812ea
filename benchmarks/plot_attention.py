"""The EAC attention figure from trained runs: original / flipped / erased views of test images
with the classifier CAM (labelled class) of the baseline and of EAC.

    python benchmarks/plot_attention.py --runs runs/ferplus-cpu --setting sym30 --out figures/

Uses ``<runs>/{baseline,eac}-<setting>-s0/checkpoints/last.pt`` and the first test image of
each class (clean labels) from the runs' own evaluation split.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ferlab.data import build_dataset
from ferlab.engine.trainer import eval_dataset_args, load_run_method
from ferlab.viz.cam import attention_figure
from ferlab.viz.plots import save_figure


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/ferplus-cpu")
    ap.add_argument("--setting", default="sym30")
    ap.add_argument("--methods", nargs="+", default=["baseline", "eac"])
    ap.add_argument("--per-class", type=int, default=1)
    ap.add_argument("--out", default="figures")
    args = ap.parse_args(argv)
    methods, cfg = {}, None
    for name in args.methods:
        ck = Path(args.runs) / f"{name}-{args.setting}-s0" / "checkpoints" / "last.pt"
        if not ck.is_file():
            print(f"missing {ck}: train it with benchmarks/run_grid.py --methods {name} --settings {args.setting}",
                  file=sys.stderr)
            return 2
        methods[name], cfg, _ = load_run_method(ck, device="cpu")
    ds = build_dataset(cfg.dataset, cfg.data_root, cfg.test_split, **eval_dataset_args(cfg))
    pick = np.concatenate([np.flatnonzero(ds.labels == c)[:args.per_class] for c in range(ds.num_classes)])
    batch = ds.subset(pick).preload(progress=False).get_batch(np.arange(len(pick)))
    fig = attention_figure(methods, batch["image"], batch["label"], class_names=ds.classes)
    fig.suptitle(f"classifier CAM of the labelled class, {args.setting} training labels", fontsize=9, y=1.01)
    # PNG only: the panels are raster images, an SVG would just embed them
    for p in save_figure(fig, Path(args.out) / f"{Path(args.runs).name}-attention-{args.setting}", formats=("png",)):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    with torch.no_grad():
        sys.exit(main())
