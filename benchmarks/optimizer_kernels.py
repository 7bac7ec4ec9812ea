"""The two Adam kernels on the CPU: Adam's per-tensor ``loop`` kernel (torch's CPU
default) against the ``fused`` kernel that ``optimizer_impl: auto`` picks, in every method's
training step.

Usage:  python benchmarks/optimizer_kernels.py [--methods ...] [--sizes 48 112] [--steps 12] [--device cpu]

The two kernels are timed **interleaved in one process** (step with one, step with the other,
order alternating), each with its own Adam state over the same model, so that a machine whose
speed drifts between runs (a shared virtual machine's large matmul can run at half its best speed a few
minutes later) slows both alike. Writes ``optimizer-kernels-<device>.json``: per method and size the median
optimizer-step time and whole-step time of each kernel and the speed-up.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import in_fresh_process, machine_and_versions, make_optimizer, median, setup, train_step

from ferlab.engine.config import TrainConfig
from ferlab.engine.precision import amp_dtype
from ferlab.engine.trainer import resolve_device

KERNELS = ("loop", "fused")


def compare(method_name: str, backbone: str, size: int, batch: int, steps: int, warmup: int,
            device: torch.device) -> dict:
    method, train_set = setup(method_name, backbone, size, batch, device, device.type == "cuda")
    opts = {k: make_optimizer(method, k) for k in KERNELS}
    amp = amp_dtype(TrainConfig().amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    times = {k: {"step": [], "optimizer": []} for k in KERNELS}
    for i in range(warmup + steps):
        for k in (KERNELS if i % 2 else KERNELS[::-1]):
            fwd_bwd, opt_s = train_step(method, train_set, i, batch, device, opts[k], amp, scaler)
            if i >= warmup:
                times[k]["step"].append(fwd_bwd + opt_s)
                times[k]["optimizer"].append(opt_s)
    n_params = sum(p.numel() for g in opts["loop"].param_groups for p in g["params"])
    row = {"method": method_name, "backbone": backbone, "input_size": size, "batch_size": batch,
           "optimized_params": n_params}
    for k in KERNELS:
        row[k] = {"median_step_s": median(times[k]["step"]), "median_optimizer_s": median(times[k]["optimizer"]),
                  "images_per_s": batch / median(times[k]["step"])}
    row["step_speedup"] = row["loop"]["median_step_s"] / row["fused"]["median_step_s"]
    row["optimizer_share_loop"] = row["loop"]["median_optimizer_s"] / row["loop"]["median_step_s"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["baseline", "eac", "rul", "dmue", "lanet", "ldlva"])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--sizes", type=int, nargs="+", default=[48, 112])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    rows = []
    for size in args.sizes:
        for name in args.methods:
            r = in_fresh_process(compare, name, args.backbone, size, args.batch_size, args.steps, args.warmup, device)
            print(f"{name} @{size}: optimizer step {1e3 * r['loop']['median_optimizer_s']:.1f} ms (loop) -> "
                  f"{1e3 * r['fused']['median_optimizer_s']:.1f} ms (fused); training step "
                  f"{1e3 * r['loop']['median_step_s']:.0f} -> {1e3 * r['fused']['median_step_s']:.0f} ms "
                  f"({r['step_speedup']:.2f}x; the loop optimizer was {100 * r['optimizer_share_loop']:.0f}% of it)",
                  flush=True)
            rows.append(r)
    result = {"benchmark": "optimizer_kernels", "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
              **machine_and_versions(device), "results": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"optimizer-kernels-{device.type}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
