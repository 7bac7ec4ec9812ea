"""Training throughput and peak memory of each method's training step (ResNet-18 at 48/112/224 px).

Usage:  python benchmarks/throughput.py [--methods baseline eac rul] [--device auto] [--sizes 48 112 224]
        [--steps 10] [--out benchmarks/results/]
Writes ``throughput-<device>.json`` with the machine, versions, command and, per method and
size, images/s, steps/s, peak memory and the step-time ratio to the baseline step.
The step measured is the trainer's: uint8 batch -> device -> batched augmentation ->
forward -> CE -> backward -> optimizer step (AMP + channels_last on CUDA).
"""
from __future__ import annotations

import argparse
import multiprocessing
import json
import os
import platform
import resource
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import amp_dtype, build_optimizer, resolve_device
from ferlab.methods import build_method
from ferlab.models import backbone_info, create_backbone


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(method_name: str, backbone: str, size: int, batch: int, steps: int, warmup: int, device: torch.device,
          channels_last: bool) -> dict:
    cfg = TrainConfig(method=method_name, backbone=backbone, input_size=size, batch_size=batch, optimizer="adam", lr=1e-4,
                      weight_decay=1e-4)
    info = backbone_info(backbone)
    method = build_method(method_name, create_backbone(backbone, num_classes=7), 7, input_size=size, mean=info["mean"],
                          std=info["std"]).to(device)   # each method's own default augmentation
    if channels_last:
        method.to(memory_format=torch.channels_last)
    opt = build_optimizer(method.param_groups(cfg.lr), cfg)
    amp = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    torch.manual_seed(0)
    batch_cpu = {"image": torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8),
                 "label": torch.randint(0, 7, (batch,)), "index": torch.arange(batch)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        b = {k: v.to(device, non_blocking=True) for k, v in batch_cpu.items()}
        with torch.autocast(device.type, dtype=amp) if amp else torch.autocast("cpu", enabled=False):
            out = method(b)
        opt.zero_grad(set_to_none=True)
        scaler.scale(out["loss"]).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    return {"method": method_name, "backbone": backbone, "input_size": size, "batch_size": batch,
            "median_step_s": step, "steps_per_s": 1 / step, "images_per_s": batch / step,
            "amp": str(amp) if amp else None, "channels_last": channels_last, "peak_rss_mib": peak_rss_mib(),
            "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["baseline", "eac", "rul"])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--sizes", type=int, nargs="+", default=[48, 112, 224])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    rows = []
    for size in args.sizes:
        for name in args.methods:
            # a fresh process per measurement, so that peak RSS belongs to this method and size only
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                r = pool.submit(bench, name, args.backbone, size, args.batch_size, args.steps, args.warmup, device,
                                device.type == "cuda").result()
            base = [b for b in rows if b["method"] == "baseline" and b["input_size"] == size]
            r["step_time_vs_baseline"] = r["median_step_s"] / base[0]["median_step_s"] if base else None
            print(f"{name} {args.backbone}@{size} bs{args.batch_size} {device}: {r['images_per_s']:.1f} img/s, "
                  f"{r['steps_per_s']:.2f} steps/s, peak RSS {r['peak_rss_mib']:.0f} MiB"
                  + (f", peak CUDA {r['peak_cuda_mib']:.0f} MiB" if r["peak_cuda_mib"] else "")
                  + (f", {r['step_time_vs_baseline']:.2f}x baseline step" if r["step_time_vs_baseline"] else ""),
                  flush=True)
            rows.append(r)
    result = {
        "benchmark": "throughput", "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": {"host": socket.gethostname(), "platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "results": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"throughput-{device.type}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
