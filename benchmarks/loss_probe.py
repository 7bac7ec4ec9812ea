"""Does a method learn in a given setting? Train a few hundred steps and print the mean of every
loss term per window (no evaluation), e.g. to check a from-scratch preset before a long run.

    python benchmarks/loss_probe.py --config recipes/dmue/ferplus.yaml --preset cpu --steps 200 \\
        --epoch 6 --set noise=symmetric --set noise_rate=0.3 --set method_args.sp_space=features

``--epoch`` is the epoch the method believes it is in (DMUE: the ramp weights; a negative epoch
zeroes DMUE's ramp-up, leaving only the auxiliary CE). Uses the run's own
optimizer, per-group learning rates, sampler and batch filter. Writes ``--out`` JSON if given.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
import yaml

from ferlab.data.samplers import epoch_order
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import Trainer


def probe(cfg: TrainConfig, steps: int, epoch: int, window: int) -> list[dict]:
    cfg.val_split = cfg.test_split = None
    cfg.progress = False
    tr = Trainer(cfg)
    m = tr.method.train()
    m.on_epoch_start(epoch)
    per = tr.cfg.batch_size
    order = epoch_order(len(tr.train_set), cfg.seed, max(epoch, 0), 0, 1, tr.cfg.sampler, tr.train_set.labels, per)
    rows, acc, n, skipped, step = [], {}, 0, 0, 0
    while step < steps and (step + 1) * per <= len(order):
        batch = {k: v.to(tr.device) for k, v in tr.train_set.get_batch(order[step * per:(step + 1) * per]).items()}
        step += 1
        if not tr._batch_ok(batch["label"]):
            skipped += 1
            continue
        out = m.training_step(batch)
        tr.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        tr.optimizer.step()
        for k, v in out.items():
            if k != "logits" and torch.is_tensor(v) and v.ndim == 0:
                acc[k] = acc.get(k, 0.0) + float(v.detach())
        if "logits" in out:
            hits = (out["logits"].argmax(1) == batch["label"]).float().mean()
            acc["train_acc"] = acc.get("train_acc", 0.0) + float(hits)
        n += 1
        if n == window:
            rows.append({"step": step, **{k: v / n for k, v in acc.items()}, "skipped": skipped})
            print(" | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
                  flush=True)
            acc, n = {}, 0
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--preset")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("--window", type=int, default=25)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    d = TrainConfig.from_yaml(args.config, args.preset).to_dict()
    for item in args.set:
        key, _, val = item.partition("=")
        target, *rest = key.split(".")
        if rest:
            d[target] = {**(d.get(target) or {}), rest[0]: yaml.safe_load(val)}
        else:
            d[key] = yaml.safe_load(val)
    rows = probe(TrainConfig.from_dict(d), args.steps, args.epoch, args.window)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"config": d, "epoch": args.epoch, "rows": rows, "command": " ".join(["python", *sys.argv])}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
