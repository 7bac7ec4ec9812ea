"""Training throughput and peak memory of each method's training step (ResNet-18 at 48/112/224 px).

Usage:  python benchmarks/throughput.py [--methods baseline eac rul dmue lanet ldlva] [--device auto]
        [--sizes 48 112 224] [--steps 10] [--out benchmarks/results/]
Writes ``throughput-<device>.json`` with the machine, versions, command, the measured peak FLOP/s
of the machine (a large matmul: fp32 on CPU, bf16 on CUDA) and, per method and size, images/s,
steps/s, peak memory, the step-time ratio to the baseline step, the FLOPs of one training step
(``torch.utils.flop_counter``: matmuls and convolutions, forward + backward) and the achieved
fraction of the peak. The step measured is the trainer's: uint8 batch -> device -> batched
augmentation -> forward -> loss -> backward -> optimizer step (AMP + channels_last on CUDA), with
each method's per-sample state sized by ``setup_train`` on a synthetic training set (LDLVA's
neighbours from its valence/arousal, LA-Net's landmarks: both carried by the synthetic faces).
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


def peak_flops(device: torch.device, n: int = 4096, reps: int = 5) -> dict:
    """The machine's practical peak: FLOP/s of an n x n matmul (fp32 on CPU, bf16 on CUDA)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return {"flops_per_s": 2 * n ** 3 / best, "matmul": n, "dtype": str(dtype), "threads": torch.get_num_threads()}


def kernel_name(opt: torch.optim.Optimizer) -> str:
    return "fused" if opt.defaults.get("fused") else "foreach" if opt.defaults.get("foreach") else "loop"


def bench(method_name: str, backbone: str, size: int, batch: int, steps: int, warmup: int, device: torch.device,
          channels_last: bool, optimizer_impl: str = "auto") -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from ferlab.data.synthetic import synthetic
    cfg = TrainConfig(method=method_name, backbone=backbone, input_size=size, batch_size=batch, optimizer="adam", lr=1e-4,
                      weight_decay=1e-4, optimizer_impl=optimizer_impl)
    info = backbone_info(backbone)
    torch.manual_seed(0)
    method = build_method(method_name, create_backbone(backbone, num_classes=7), 7, input_size=size, mean=info["mean"],
                          std=info["std"]).to(device)   # each method's own default augmentation
    train_set = synthetic("train", n=max(256, 2 * batch), image_size=size)
    method.setup_train(train_set)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    opt = build_optimizer(method.param_groups(cfg.lr), cfg)
    amp = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, flops = [], None
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch_cpu = train_set.get_batch(torch.arange(i * batch, (i + 1) * batch) % len(train_set))
        b = {k: v.to(device, non_blocking=True) for k, v in batch_cpu.items()}
        counter = FlopCounterMode(display=False) if i == 0 else None
        with counter or torch.autocast("cpu", enabled=False):
            with torch.autocast(device.type, dtype=amp) if amp else torch.autocast("cpu", enabled=False):
                out = method(b)
            opt.zero_grad(set_to_none=True)
            scaler.scale(out["loss"]).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if counter is not None:
            flops = counter.get_total_flops()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    return {"method": method_name, "backbone": backbone, "input_size": size, "batch_size": batch,
            "median_step_s": step, "steps_per_s": 1 / step, "images_per_s": batch / step,
            "step_flops": flops, "achieved_flops_per_s": flops / step if flops else None,
            "amp": str(amp) if amp else None, "channels_last": channels_last,
            "optimizer": f"adam ({kernel_name(opt)})", "peak_rss_mib": peak_rss_mib(),
            "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["baseline", "eac", "rul", "dmue", "lanet", "ldlva"])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--sizes", type=int, nargs="+", default=[48, 112, 224])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--optimizer-impl", default="auto", choices=["auto", "fused", "foreach", "loop"],
                    help="optimizer kernel (loop = torch's CPU default before ferlab chose fused; the file name "
                         "gets a -<impl> suffix unless auto)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    peak = peak_flops(device)
    print(f"peak {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['matmul']}^2 {peak['dtype']} matmul)", flush=True)
    rows = []
    for size in args.sizes:
        for name in args.methods:
            # a fresh process per measurement, so that peak RSS belongs to this method and size only
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                r = pool.submit(bench, name, args.backbone, size, args.batch_size, args.steps, args.warmup, device,
                                device.type == "cuda", args.optimizer_impl).result()
            base = [b for b in rows if b["method"] == "baseline" and b["input_size"] == size]
            r["step_time_vs_baseline"] = r["median_step_s"] / base[0]["median_step_s"] if base else None
            r["peak_fraction"] = r["achieved_flops_per_s"] / peak["flops_per_s"] if r["achieved_flops_per_s"] else None
            print(f"{name} {args.backbone}@{size} bs{args.batch_size} {device}: {r['images_per_s']:.1f} img/s, "
                  f"{r['steps_per_s']:.2f} steps/s, peak RSS {r['peak_rss_mib']:.0f} MiB"
                  + (f", peak CUDA {r['peak_cuda_mib']:.0f} MiB" if r["peak_cuda_mib"] else "")
                  + (f", {r['step_time_vs_baseline']:.2f}x baseline step" if r["step_time_vs_baseline"] else "")
                  + (f", {100 * r['peak_fraction']:.0f}% of peak" if r["peak_fraction"] else ""),
                  flush=True)
            rows.append(r)
    result = {
        "benchmark": "throughput", "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": {"host": socket.gethostname(), "platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "peak": peak,
        "results": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.optimizer_impl == "auto" else f"-{args.optimizer_impl}"
    path = out / f"throughput-{device.type}{suffix}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
