"""Does bf16 autocast change what a run learns? Validation curves of the FERPlus baseline, float32 vs the
trainer's defaults (bf16 autocast + channels_last where the CPU computes bf16 natively), two seeds each.

    python benchmarks/precision_pilot.py [--presets cpu_pretrained cpu] [--seeds 0 1] [--epochs 5]
        [--out-dir runs] [--results benchmarks/results/precision-pilot-ferplus-cpu.json]

Every run is the baseline of ``recipes/baseline/ferplus.yaml`` at the preset, on the clean majority labels,
cut to ``--epochs`` and without a test split (nothing here looks at FER2013Test). A run with a
``summary.json`` is read, a run with a checkpoint resumed, so the script can be stopped and started.
The JSON holds each run's per-epoch validation accuracy and, per preset, the mean over seeds of each
precision, the seed-to-seed spread (the largest |seed 0 - seed 1| per epoch within one precision, and
of the mean of the last 3 epochs) and the difference between the precisions, with a verdict: the
precisions differ when the difference of their means exceeds the seed spread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_grid import git_commit, run_config  # noqa: E402
from throughput import PRECISIONS, machine_and_versions  # noqa: E402

from ferlab.engine.checkpoint import write_text_atomic  # noqa: E402
from ferlab.engine.trainer import fit, read_history  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pilot_config(preset: str, seed: int, precision: str, epochs: int, out_dir: str):
    amp, channels_last = PRECISIONS[precision]
    return run_config("baseline", "clean", preset, seed, out_dir, overrides={
        "epochs": epochs, "test_split": None, "amp": amp, "channels_last": channels_last, "train_fit_every": 0,
        "out_dir": str(Path(out_dir) / "precision-pilot"), "name": f"baseline-{preset}-{precision}-s{seed}"})


def run_one(cfg) -> list[dict]:
    run = Path(cfg.out_dir) / cfg.run_name()
    if not (run / "summary.json").is_file():
        fit(cfg, resume=(run / "checkpoints" / "last.pt").is_file())
    config = (run / "config.yaml").read_text()
    return read_history(run), config


def summarise(curves: dict[str, list[list[float]]], last: int = 3) -> dict:
    """Per precision: mean curve over seeds; the seed spread; the difference of the precisions' means."""
    out = {}
    for prec, runs in curves.items():
        mean = [sum(c[e] for c in runs) / len(runs) for e in range(len(runs[0]))]
        tail = [sum(c[-last:]) / last for c in runs]
        out[prec] = {"mean_val_acc": mean, f"mean_last_{last}": sum(tail) / len(tail),
                     f"seed_spread_last_{last}": max(tail) - min(tail),
                     "seed_spread_per_epoch_max": max(max(c[e] for c in runs) - min(c[e] for c in runs)
                                                      for e in range(len(mean)))}
    if {"fp32", "auto"} <= set(out):
        diff = out["auto"][f"mean_last_{last}"] - out["fp32"][f"mean_last_{last}"]
        spread = max(out["fp32"][f"seed_spread_last_{last}"], out["auto"][f"seed_spread_last_{last}"])
        out["difference"] = {f"auto_minus_fp32_last_{last}": diff, f"seed_spread_last_{last}": spread,
                             "within_seed_spread": abs(diff) <= spread}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["cpu_pretrained", "cpu"],
                    help="presets of recipes/baseline/ferplus.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "auto"], choices=list(PRECISIONS))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out-dir", default=str(ROOT / "runs"), help="run folders go to OUT_DIR/precision-pilot/")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "precision-pilot-ferplus-cpu.json"))
    args = ap.parse_args(argv)
    runs, presets = [], {}
    for preset in args.presets:
        curves: dict[str, list[list[float]]] = {}
        for seed in args.seeds:
            for prec in args.precisions:
                cfg = pilot_config(preset, seed, prec, args.epochs, args.out_dir)
                t0 = time.time()
                history, config = run_one(cfg)
                val = [h["val_acc"] for h in history]
                curves.setdefault(prec, []).append(val)
                saved = yaml.safe_load(config)
                resolved = {k: saved[k] for k in ("amp", "channels_last")}
                # no times: the pilots share the cores with other work; speed is throughput.py's
                runs.append({"preset": preset, "seed": seed, "precision": prec, "resolved": resolved,
                             "val_acc": val, "train_loss": [h["loss"] for h in history]})
                print(f"{preset} seed {seed} {prec} ({resolved}): val {' '.join(f'{v:.4f}' for v in val)} "
                      f"[{time.time() - t0:.0f} s]", flush=True)
        presets[preset] = summarise(curves)
    result = {"benchmark": "precision-pilot", "dataset": "ferplus (clean majority labels; FER2013Valid only)",
              "method": "baseline", "epochs": args.epochs, "commit": git_commit(),
              "command": " ".join(["python", *sys.argv]), **machine_and_versions(torch.device("cpu")),
              "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "runs": runs, "summary": presets}
    write_text_atomic(json.dumps(result, indent=2), args.results)
    print(json.dumps(presets, indent=1))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
