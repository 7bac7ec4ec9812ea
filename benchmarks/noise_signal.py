"""How well a trained run's per-sample signals detect the wrong training labels (AUROC).

    python benchmarks/noise_signal.py runs/ferplus-cpu/rul-sym30-s0 [runs/...]

Signals (``ferlab.engine.signals``, cached in ``<run>/signals.npz``) on the run's own noisy
training set, eval mode, eval transform, each oriented higher = more suspicious:
``label_loss`` = CE of the given label (any method: the small-loss criterion), and each method's
own signal: RUL ``uncertainty`` = mean exp(log-variance); DMUE ``1-confidence`` (pairwise
confidence of the given label, class similarities against the whole training set) and
``1-confidence_bank`` (the confidence each sample last got during training); LA-Net ``1-mass`` (1 - the
estimated label distribution's mass on the given label, from the momentum bank); LDLVA ``1-lambda``
(1 - the learned certainty of the given label).
Target: the training label differs from the clean (FERPlus majority) label.
Writes ``benchmarks/results/noise-signal-<preset>.json`` (one entry per run, merged).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ferlab.engine.config import TrainConfig
from ferlab.engine.metrics import noise_detection_auroc
from ferlab.engine.signals import run_signals


def score_run(run: Path, device: str = "cpu") -> dict:
    sig = run_signals(run, device=device)
    cfg = TrainConfig.from_yaml(run / "config.yaml")
    known, flipped = sig["known"], sig["flipped"]
    out = {"run": str(run), "method": cfg.method, "n": int(known.sum()), "n_flipped": int(flipped.sum()), "auroc": {}}
    for name, score in sig.items():
        if name in ("known", "flipped"):
            continue
        use = known & np.isfinite(score)
        out["auroc"][name] = noise_detection_auroc(score[use], flipped[use])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    results = {}
    for run in map(Path, args.runs):
        r = score_run(run, args.device)
        results[run.name] = r
        print(f"{run.name}: " + ", ".join(f"{k} AUROC {v:.3f}" for k, v in r["auroc"].items())
              + f" ({r['n_flipped']} of {r['n']} labels wrong)", flush=True)
        preset = run.parent.name
    path = Path(args.out) / f"noise-signal-{preset}.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged.update(results)
    path.write_text(json.dumps(merged, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
