"""How well a trained run's per-sample signals detect the wrong training labels (AUROC).

    python benchmarks/noise_signal.py runs/ferplus-cpu/rul-sym30-s0 [runs/...]

Signals on the run's own (noisy) training set, eval mode, eval transform:
``label_loss`` = CE of the given label (any method: the small-loss criterion), and each
method's own signal where it has one (higher = more suspicious):

- RUL ``uncertainty`` = mean exp(log-variance);
- DMUE ``1-confidence``: the pairwise confidence of the given label, its class similarities taken
  against the whole training set (eval features) instead of a batch; ``1-confidence_bank``: the
  confidence each sample last got during training (batch reference, train augmentation).
Target: the training label differs from the clean (FERPlus majority) label.
Writes ``benchmarks/results/noise-signal-<preset>.json`` (one entry per run, merged).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ferlab.engine.config import TrainConfig
from ferlab.engine.metrics import noise_detection_auroc
from ferlab.engine.trainer import Trainer

OWN_SIGNAL = {"rul": "uncertainty"}


def dmue_signals(m, ds, device) -> dict:
    feats = []
    for lo in range(0, len(ds), 256):
        b = ds.get_batch(np.arange(lo, min(lo + 256, len(ds))))
        feats.append(m.pooled(m.prepare(b["image"].to(device))).float())
    feats = torch.cat(feats)
    labels = torch.as_tensor(ds.labels, device=device)
    conf = torch.cat([m.confidence_head(feats[lo:lo + 1024], labels[lo:lo + 1024], feats, labels)
                      for lo in range(0, len(ds), 1024)])
    return {"1-confidence": 1 - conf.cpu().numpy(), "1-confidence_bank": 1 - m.confidence_bank.cpu().numpy()}


@torch.no_grad()
def signals(run: Path) -> dict:
    cfg = TrainConfig.from_yaml(run / "config.yaml")
    cfg.progress = False
    tr = Trainer(cfg)
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    tr.method.load_state_dict(state["model"])
    m, ds = tr.method.eval(), tr.train_set
    loss, own = [], []
    for lo in range(0, len(ds), 256):
        b = ds.get_batch(np.arange(lo, min(lo + 256, len(ds))))
        x = m.prepare(b["image"].to(tr.device))
        loss.append(F.cross_entropy(m.predict(x).float(), b["label"].to(tr.device), reduction="none").cpu())
        if cfg.method in OWN_SIGNAL:
            own.append(getattr(m, OWN_SIGNAL[cfg.method])(x).float().cpu())
    ok = ds.clean_labels >= 0
    flipped = (ds.labels != ds.clean_labels)[ok]
    out = {"run": str(run), "method": cfg.method, "n": int(ok.sum()), "n_flipped": int(flipped.sum()),
           "auroc": {"label_loss": noise_detection_auroc(torch.cat(loss).numpy()[ok], flipped)}}
    if own:
        out["auroc"][OWN_SIGNAL[cfg.method]] = noise_detection_auroc(torch.cat(own).numpy()[ok], flipped)
    if cfg.method == "dmue":
        for name, score in dmue_signals(m, ds, tr.device).items():
            seen = ok & np.isfinite(score)
            out["auroc"][name] = noise_detection_auroc(score[seen], (ds.labels != ds.clean_labels)[seen])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    results = {}
    for run in map(Path, args.runs):
        r = signals(run)
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
