"""Face-pretrained vs random-init dlib_resnet29 vs ResNet-18 from scratch on FERPlus (clean labels).

    python benchmarks/run_grid.py --methods baseline baseline:randinit --settings clean --preset cpu_pretrained
    python benchmarks/backbone_comparison.py            # JSON + markdown table + figure

The preset's norm and learning rate were chosen on FER2013Valid with 5-epoch pilots (NORM in frozen /
batchnorm, LR in 1e-5 3e-5 1e-4 3e-4; numbers in recipes/baseline/ferplus.yaml's provenance):

    ferlab train --config recipes/baseline/ferplus.yaml --preset cpu --backbone dlib_resnet29 --weights dlib \
        --input-size 112 --set backbone_args.norm=NORM --lr LR --epochs 5 --train-fit-every 0 \
        --out-dir runs/dlib-pilots --name pilot-NORM-lrLR

Reads the baseline clean rows of the ``cpu`` grid (ResNet-18 from scratch, 48 px) and of the
``cpu_pretrained`` grid (dlib_resnet29 at 112 px from dlib's face weights, and the same network from
random init: the ``cpu_pretrained_randinit`` preset), all with the same 8,000 training images, labels,
epochs, batch, optimizer, schedule and seed, and writes
``benchmarks/results/backbone-comparison-ferplus.json`` (protocol columns and per-epoch curves),
prints the README table and draws ``figures/ferplus-backbone-comparison.{png,svg}``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# label -> (grid results file, method name in that grid)
ROWS = {
    "dlib_resnet29, face weights, 112 px": ("ferplus-grid-cpu_pretrained.json", "baseline"),
    "dlib_resnet29, random init, 112 px": ("ferplus-grid-cpu_pretrained.json", "baseline:randinit"),
    "ResNet-18 from scratch, 48 px (cpu grid)": ("ferplus-grid-cpu.json", "baseline"),
}


def collect(results: Path = RESULTS) -> dict:
    rows = []
    for label, (file, method) in ROWS.items():
        grid = json.loads((results / file).read_text())
        run = next((r for r in grid["runs"] if r["method"] == method and r["setting"] == "clean" and r["seed"] == 0),
                   None)
        if run is None:
            raise SystemExit(f"{results / file}: no finished clean row of {method}; train it with "
                             f"benchmarks/run_grid.py (see this script's docstring)")
        cfg = run["config"]
        rows.append({"label": label, "grid": file, "method": method, "run": run["run"],
                     "backbone": cfg["backbone"], "weights": cfg["weights"], "backbone_args": cfg.get("backbone_args"),
                     "input_size": cfg["input_size"], "epochs": len(run["curve"]), "protocol": run["protocol"],
                     "test_dedup_last": run["test_dedup_last"], "train_time_s": run["train_time_s"],
                     "curve": [{k: c.get(k) for k in ("epoch", "train_acc", "val_acc", "test_acc")}
                               for c in run["curve"]],
                     "commit": grid.get("commit"), "config": cfg})
    return {"benchmark": "ferplus-backbone-comparison", "setting": "clean FERPlus majority labels, first 8,000 "
            "FER2013Train images, FER2013Valid / FER2013Test majority labels, 7 classes, CE baseline",
            "command": "python benchmarks/backbone_comparison.py", "rows": rows}


def table(result: dict) -> str:
    lines = ["| backbone | last | mean last 5 | test @ best val (epoch) | last, dedup test | train time |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        p = r["protocol"]
        lines.append(f"| {r['label']} | {100 * p['last']:.2f} | {100 * p['mean_last_k']:.2f} | "
                     f"{100 * p['best_val']:.2f} ({p['best_val_epoch']}) | {100 * r['test_dedup_last']['acc']:.2f} | "
                     f"{r['train_time_s'] / 60:.0f} min |")
    return "\n".join(lines)


def figure(result: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, r in enumerate(result["rows"]):
        ep = [c["epoch"] for c in r["curve"]]
        ax.plot(ep, [100 * c["test_acc"] for c in r["curve"]], "-o", ms=3, color=f"C{i}", label=f"{r['label']}: test")
        ax.plot(ep, [100 * c["val_acc"] for c in r["curve"]], "--", color=f"C{i}", alpha=0.6, label="val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("FERPlus, clean labels, 8,000 training images: CE baseline")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [out.with_suffix(s) for s in (".png", ".svg")]
    for f in files:
        fig.savefig(f, dpi=150)
    plt.close(fig)
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(RESULTS), help="folder of the grid results JSONs")
    ap.add_argument("--out", default=str(RESULTS / "backbone-comparison-ferplus.json"))
    ap.add_argument("--figure", default=str(ROOT / "figures" / "ferplus-backbone-comparison"),
                    help="figure path without suffix (png and svg)")
    args = ap.parse_args(argv)
    from ferlab.engine.checkpoint import write_text_atomic
    result = collect(Path(args.results))
    write_text_atomic(json.dumps(result, indent=2), args.out)
    print(table(result))
    print("wrote", args.out, *figure(result, Path(args.figure)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
