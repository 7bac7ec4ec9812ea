"""Training throughput and peak memory of each method's training step (ResNet-18 at 48/112/224 px,
or any registered backbone).

Usage:  python benchmarks/throughput.py [--methods baseline eac rul dmue lanet ldlva] [--device auto]
        [--sizes 48 112 224] [--steps 10] [--repeats 3] [--precisions fp32 auto] [--epoch-images 512]
        [--out benchmarks/results/]
        python benchmarks/throughput.py --backbone dlib_resnet29 --weights dlib [--backbone-arg out_stage=4]
        [--backbone-arg norm=frozen] --sizes 112 ...                   # the face-pretrained backbone
        python benchmarks/throughput.py --backbone timm:convnext_tiny --methods baseline --sizes 112
        [--precisions auto]                       # any timm / torchvision network (timm:<model>, tv:<model>)
        python benchmarks/throughput.py --table benchmarks/results/throughput-cpu.json   # README table
Writes ``throughput-<device>.json`` (ResNet-18), ``throughput-<device>-<backbone>[-<arg><value>...].json``
(another backbone / constructor options; ``timm:x`` is written ``timm-x``) with the machine (CPU instruction
sets, GPU, the load average before and after the run: another process's load slows it), versions, command,
the measured peak FLOP/s of the machine in float32 and in bf16 (best of large matmuls and a large 3x3
convolution; bf16 where the device computes it natively) and, per method, size and precision
(``fp32``: float32, contiguous -- ``--amp off --channels-last off``; ``auto``: the trainer's defaults,
:mod:`ferlab.engine.precision`), images/s, steps/s, peak memory (this process's RSS high-water mark; CUDA
allocator peak), the step-time ratio to the baseline step, the FLOPs of one training step
(``torch.utils.flop_counter``: matmuls and convolutions, forward + backward) and the achieved
fraction of the peak of the precision the step ran in; each row names its backbone, weights and ``backbone_args``.
The input normalisation is the backbone's ``pretrained_cfg`` (of the named weights). The step measured is
the trainer's: uint8 batch -> device -> batched augmentation -> forward -> loss -> backward ->
optimizer step (autocast and memory format as the trainer resolves them), with
each method's per-sample state sized by ``setup_train`` on a synthetic training set (LDLVA's
neighbours from its valence/arousal, LA-Net's landmarks: both carried by the synthetic faces).
``--repeats`` measures everything several times round-robin and keeps the median repeat.
``--epoch-images N`` also times a whole training epoch through :class:`ferlab.engine.trainer.Trainer` on N
synthetic faces (JPEG decode into the cache, augmentation, steps, evaluation of a validation split of
N / 4 images) per method and precision: ``epoch_images_per_s`` counts training images per second of the
epoch's wall time, evaluation included.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import multiprocessing
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
from ferlab.engine.optim import build_optimizer
from ferlab.engine.precision import amp_dtype, cpu_isa, cpu_native_bf16, use_channels_last
from ferlab.engine.trainer import resolve_device
from ferlab.methods import build_method
from ferlab.models import create_backbone

#: --precisions: name -> (amp, channels_last) settings of the trainer
PRECISIONS = {"fp32": ("off", "off"), "auto": ("auto", "auto"), "bf16": ("bf16", "auto")}


def peak_rss_mib() -> float:
    """This process's own peak RSS. ``ru_maxrss`` is not it: Linux carries the parent's high-water
    mark over fork + exec, so a spawned worker would report at least the parent's RSS."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _best_seconds(fn, device: torch.device, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def peak_flops(device: torch.device, reps: int = 5, dtype: torch.dtype = torch.float32) -> dict:
    """The machine's practical peak FLOP/s in ``dtype``: the best of two large matmuls (4096^2, 6144^2)
    and a large 3x3 convolution (ResNet-18 layer3-like, 256 -> 256 channels, 56 x 56, batch 32,
    channels_last for bf16 and on CUDA). One matmul alone is not enough: on a 2-core CPU a 4096^2
    matmul varied by 2x from run to run while the convolution was steady."""
    kernels = {}
    for n in (4096, 6144):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        kernels[f"matmul {n}^2"] = 2 * n ** 3 / _best_seconds(functools.partial(torch.matmul, a, b), device, reps)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype)
    x = torch.randn(32, 256, 56, 56, device=device, dtype=dtype)
    if device.type == "cuda" or dtype == torch.bfloat16:
        conv, x = conv.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    conv_flops = 2 * 32 * 256 * 256 * 9 * 56 * 56
    kernels["conv3x3 256->256 56x56 b32"] = conv_flops / _best_seconds(lambda: conv(x), device, reps)
    best = max(kernels, key=kernels.get)
    return {"flops_per_s": kernels[best], "kernel": best, "kernels_flops_per_s": kernels, "dtype": str(dtype),
            "threads": torch.get_num_threads()}


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a spawned process, so that its peak RSS and its warm-up belong to it alone."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def machine_and_versions(device: torch.device) -> dict:
    """The ``machine`` and ``versions`` entries of a benchmark's JSON."""
    return {"machine": {"host": socket.gethostname(), "platform": platform.platform(),
                        "processor": platform.processor(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                        "cpu_instruction_sets": cpu_isa(), "cpu_native_bf16": cpu_native_bf16(),
                        "torch_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
            "versions": {"python": platform.python_version(), "torch": torch.__version__}}


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``/proc/cpuinfo``), for the record only."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def kernel_name(opt: torch.optim.Optimizer) -> str:
    return "fused" if opt.defaults.get("fused") else "foreach" if opt.defaults.get("foreach") else "loop"


def setup(method_name: str, backbone: str, size: int, batch: int, device: torch.device, channels_last: bool,
          weights: str | None = None, backbone_args: dict | None = None):
    """A method with its own default augmentation, sized by ``setup_train`` on synthetic faces;
    ``create_backbone(backbone, weights, **backbone_args)`` with the normalisation of its ``pretrained_cfg``."""
    from ferlab.data.synthetic import synthetic
    torch.manual_seed(0)
    net = create_backbone(backbone, weights=weights, num_classes=7, verbose=False, **(backbone_args or {}))
    info = net.pretrained_cfg
    method = build_method(method_name, net, 7, input_size=size, mean=info["mean"], std=info["std"]).to(device)
    train_set = synthetic("train", n=max(256, 2 * batch), image_size=size)
    method.setup_train(train_set)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    return method, train_set


def make_optimizer(method, optimizer_impl: str = "auto") -> torch.optim.Optimizer:
    cfg = TrainConfig(optimizer="adam", lr=1e-4, weight_decay=1e-4, optimizer_impl=optimizer_impl)
    return build_optimizer(method.param_groups(cfg.lr), cfg)


def train_step(method, train_set, i: int, batch: int, device: torch.device, opt, amp, scaler,
               counter=None) -> tuple[float, float]:
    """One trainer step on batch ``i``; returns (seconds to the end of backward, seconds of the optimizer step)."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    batch_cpu = train_set.get_batch(torch.arange(i * batch, (i + 1) * batch) % len(train_set))
    b = {k: v.to(device, non_blocking=True) for k, v in batch_cpu.items()}
    with counter or contextlib.nullcontext():
        with torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext():
            out = method(b)
        opt.zero_grad(set_to_none=True)
        scaler.scale(out["loss"]).backward()
    sync()
    t1 = time.perf_counter()
    scaler.step(opt)
    scaler.update()
    sync()
    return t1 - t0, time.perf_counter() - t1


def bench(method_name: str, backbone: str, size: int, batch: int, steps: int, warmup: int, device: torch.device,
          precision: str = "auto", optimizer_impl: str = "auto", weights: str | None = None,
          backbone_args: dict | None = None) -> dict:
    """One method's training step at ``size`` px in ``precision`` (a :data:`PRECISIONS` name)."""
    from torch.utils.flop_counter import FlopCounterMode
    amp = amp_dtype(PRECISIONS[precision][0], device)
    channels_last = use_channels_last(PRECISIONS[precision][1], device, amp)
    method, train_set = setup(method_name, backbone, size, batch, device, channels_last, weights, backbone_args)
    opt = make_optimizer(method, optimizer_impl)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, flops = [], None
    for i in range(warmup + steps):
        counter = FlopCounterMode(display=False) if i == 0 else None
        times.append(sum(train_step(method, train_set, i, batch, device, opt, amp, scaler, counter)))
        if counter is not None:
            flops = counter.get_total_flops()
    step = median(times[warmup:])
    return {"method": method_name, "backbone": backbone, "weights": weights, "backbone_args": dict(backbone_args or {}),
            "input_size": size, "batch_size": batch,
            "median_step_s": step, "steps_per_s": 1 / step, "images_per_s": batch / step,
            "step_flops": flops, "achieved_flops_per_s": flops / step if flops else None,
            "precision": precision, "amp": str(amp) if amp else None, "channels_last": channels_last,
            "optimizer": f"adam ({kernel_name(opt)})", "peak_rss_mib": peak_rss_mib(),
            "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None}


def epoch_bench(method_name: str, backbone: str, size: int, batch: int, n_images: int, device: torch.device,
                precision: str = "auto", weights: str | None = None, backbone_args: dict | None = None) -> dict:
    """One epoch of :class:`~ferlab.engine.trainer.Trainer` on ``n_images`` synthetic faces at ``size`` px
    with a validation split of ``n_images // 4``, each method's own optimizer at lr 1e-4 (as the step
    benchmark): training images per second of the epoch's wall time (augmentation, steps, evaluation; the
    image cache is filled before the clock starts)."""
    import tempfile

    from ferlab.engine.divergence import TrainingDiverged
    from ferlab.engine.trainer import Trainer
    amp, channels_last = PRECISIONS[precision]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(method=method_name, dataset="synthetic", dataset_args={"image_size": size},
                          backbone=backbone, weights=weights, backbone_args=dict(backbone_args or {}),
                          input_size=size, epochs=1, batch_size=batch, limit_train=n_images, lr=1e-4,
                          limit_eval=max(1, n_images // 4), test_split=None, amp=amp, channels_last=channels_last,
                          device=str(device), out_dir=tmp, name="epoch", progress=False, train_fit_every=0)
        trainer = Trainer(cfg)
        t0 = time.perf_counter()
        try:
            trainer.fit()
        except TrainingDiverged as e:       # a timing, not a training: say so instead of losing the table
            return {"epoch_error": str(e).splitlines()[0]}
        wall = time.perf_counter() - t0
    return {"method": method_name, "input_size": size, "precision": precision, "epoch_images": n_images,
            "epoch_wall_s": wall, "epoch_images_per_s": n_images / wall,
            "step_images_per_s": trainer.history[-1]["images_per_s"]}


NAMES = {"baseline": "baseline", "eac": "EAC", "rul": "RUL", "dmue": "DMUE", "lanet": "LA-Net", "ldlva": "LDLVA"}


def markdown_table(result: dict) -> str:
    """The README speed table of a ``throughput-*.json``."""
    cuda = any(r["peak_cuda_mib"] for r in result["results"])
    head = ["method", "input", "precision", "images/s", "steps/s", "step time vs baseline", "GFLOP / step",
            "% of peak FLOP/s", "peak RSS (MiB)"] + (["peak CUDA (MiB)"] if cuda else [])
    speed = any(r.get("speedup_vs_fp32") for r in result["results"])
    epoch = any(r.get("epoch_images_per_s") for r in result["results"])
    head += (["speed-up vs float32"] if speed else []) + (["epoch images/s"] if epoch else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["results"]:
        ratio = 1.0 if r["method"] == "baseline" else r["step_time_vs_baseline"]
        prec = "float32" if r.get("amp") is None else r["amp"].replace("torch.bfloat16", "bf16").replace(
            "torch.float16", "fp16")
        prec += ", channels_last" if r.get("channels_last") else ""
        cells = [NAMES.get(r["method"], r["method"]), str(r["input_size"]), prec, f"{r['images_per_s']:.1f}",
                 f"{r['steps_per_s']:.2f}", f"{ratio:.2f}" if ratio else "-",
                 f"{r['step_flops'] / 1e9:.1f}" if r["step_flops"] else "-",
                 f"{100 * r['peak_fraction']:.0f}" if r["peak_fraction"] else "-", f"{r['peak_rss_mib']:.0f}"]
        if cuda:
            cells.append(f"{r['peak_cuda_mib']:.0f}")
        if speed:
            cells.append(f"{r['speedup_vs_fp32']:.2f}" if r.get("speedup_vs_fp32") else "-")
        if epoch:
            cells.append(f"{r['epoch_images_per_s']:.1f}" if r.get("epoch_images_per_s") else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_backbone_args(items: list[str]) -> dict:
    """``["out_stage=3", "norm=batchnorm"]`` -> ``{"out_stage": 3, "norm": "batchnorm"}`` (values as YAML)."""
    import yaml
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--backbone-arg expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(val)
    return out


def check_backbone(ap: argparse.ArgumentParser, args) -> dict:
    """The backbone's constructor options; one-line errors (exit 2) for an unknown backbone or
    option, missing weights, or a ``--sizes`` entry below the network's minimum input."""
    import yaml

    from ferlab.models.registry import backbone_problem

    def fail(msg: str):
        ap.exit(2, f"{ap.prog}: error: {msg}\n")

    problem = backbone_problem(args.backbone)
    if problem:
        fail(f"--backbone {args.backbone}: {problem}")
    try:
        backbone_args = parse_backbone_args(args.backbone_arg)
        net = create_backbone(args.backbone, weights=args.weights, verbose=False, **backbone_args)
    except (ValueError, TypeError, RuntimeError, OSError, yaml.YAMLError) as e:   # options, weights: one line
        fail(f"--backbone {args.backbone} --weights {args.weights or '(none)'} --backbone-arg "
             f"{' '.join(args.backbone_arg) or '(none)'}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    small = [s for s in args.sizes if s < net.min_input_size]
    if small:
        fail(f"--sizes {' '.join(map(str, small))}: below the minimum input of {args.backbone}"
             f"{' ' + str(backbone_args) if backbone_args else ''} ({net.min_input_size} px)")
    return backbone_args


def backbone_suffix(backbone: str, backbone_args: dict) -> str:
    """The result file's backbone part: '' for ResNet-18 (the README's main table), else
    ``-<backbone>[-<key><value>...]``."""
    if backbone == "resnet18" and not backbone_args:
        return ""
    return "".join([f"-{backbone.replace(':', '-')}", *(f"-{k}{v}" for k, v in sorted(backbone_args.items()))])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["baseline", "eac", "rul", "dmue", "lanet", "ldlva"])
    ap.add_argument("--backbone", default="resnet18", help="a registered backbone (ferlab.models.list_backbones), "
                                                           "timm:<model> or tv:<model>")
    ap.add_argument("--weights", help="named weights of the backbone (dlib_resnet29: dlib) or a checkpoint file; "
                                      "sets the input normalisation (pretrained_cfg)")
    ap.add_argument("--backbone-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="a backbone constructor option, repeatable (dlib_resnet29: out_stage=3, norm=batchnorm)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[48, 112, 224])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1,
                    help="measure every method and size this many times (round-robin, fresh processes); "
                         "report the median repeat")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "auto"], choices=list(PRECISIONS),
                    help="fp32: float32, contiguous (--amp off --channels-last off); auto: the trainer's defaults "
                         "(bf16 autocast + channels_last where the device computes bf16 natively); bf16: forced")
    ap.add_argument("--epoch-images", type=int, default=0, metavar="N",
                    help="also time one whole Trainer epoch on N synthetic faces (plus N/4 validation) per method, "
                         "size and precision (0: no)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--optimizer-impl", default="auto", choices=["auto", "fused", "foreach", "loop"],
                    help="optimizer kernel (loop = torch's CPU default before ferlab chose fused; the file name "
                         "gets a -<impl> suffix unless auto)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--suffix", default="",
                    help="appended to the result file's name (e.g. no-native-bf16 with FERLAB_CPU_BF16=0)")
    ap.add_argument("--table", metavar="JSON", help="only print the markdown table of an existing result file")
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())))
        return 0
    backbone_args = check_backbone(ap, args)
    load_before = os.getloadavg()
    device = resolve_device(args.device)
    peaks = {"fp32": peak_flops(device, dtype=torch.float32)}
    if device.type == "cuda" or cpu_native_bf16():
        peaks["bf16"] = peak_flops(device, dtype=torch.bfloat16)
    for name, peak in peaks.items():
        print(f"peak {name} {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['kernel']}; "
              + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in peak["kernels_flops_per_s"].items()) + ")", flush=True)
    # repeats go round-robin over sizes and methods, so that a drift in the machine's speed (a shared
    # virtual machine can vary by tens of percent over minutes) spreads over all methods instead of biasing one
    reps: dict[tuple[int, str, str], list[dict]] = {}
    for rep in range(args.repeats):
        for size in args.sizes:
            for name in args.methods:
                for prec in args.precisions:
                    r = in_fresh_process(bench, name, args.backbone, size, args.batch_size, args.steps, args.warmup,
                                         device, prec, args.optimizer_impl, args.weights, backbone_args)
                    reps.setdefault((size, name, prec), []).append(r)
                    print(f"[{rep + 1}/{args.repeats}] {name} {args.backbone}@{size} {prec}: "
                          f"{r['images_per_s']:.1f} img/s", flush=True)
    rows = []
    for (size, name, prec), runs in reps.items():
        r = dict(sorted(runs, key=lambda x: x["median_step_s"])[len(runs) // 2])   # the median repeat
        r["repeat_step_s"] = [x["median_step_s"] for x in runs]
        r["peak_rss_mib"] = max(x["peak_rss_mib"] for x in runs)
        base = [b for b in rows if b["method"] == "baseline" and b["input_size"] == size and b["precision"] == prec]
        r["step_time_vs_baseline"] = r["median_step_s"] / base[0]["median_step_s"] if base else None
        fp32 = [b for b in rows if b["method"] == name and b["input_size"] == size and b["precision"] == "fp32"]
        r["speedup_vs_fp32"] = fp32[0]["median_step_s"] / r["median_step_s"] if fp32 else None
        peak = peaks["bf16" if r["amp"] == str(torch.bfloat16) and "bf16" in peaks else "fp32"]
        r["peak_fraction"] = r["achieved_flops_per_s"] / peak["flops_per_s"] if r["achieved_flops_per_s"] else None
        if args.epoch_images:
            r.update({k: v for k, v in in_fresh_process(
                epoch_bench, name, args.backbone, size, args.batch_size, args.epoch_images, device, prec,
                args.weights, backbone_args).items() if k.startswith("epoch") or k == "step_images_per_s"})
        print(f"{name} {args.backbone}@{size} {prec} bs{args.batch_size} {device}: {r['images_per_s']:.1f} img/s, "
              f"{r['steps_per_s']:.2f} steps/s, peak RSS {r['peak_rss_mib']:.0f} MiB"
              + (f", peak CUDA {r['peak_cuda_mib']:.0f} MiB" if r["peak_cuda_mib"] else "")
              + (f", {r['step_time_vs_baseline']:.2f}x baseline step" if r["step_time_vs_baseline"] else "")
              + (f", {100 * r['peak_fraction']:.0f}% of peak" if r["peak_fraction"] else "")
              + (f", {r['speedup_vs_fp32']:.2f}x fp32" if r.get("speedup_vs_fp32") else "")
              + (f", epoch {r['epoch_images_per_s']:.1f} img/s" if r.get("epoch_images_per_s") else ""),
              flush=True)
        rows.append(r)
    result = {
        "benchmark": "throughput", "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        **machine_and_versions(device),
        "peak": peaks["fp32"], "peaks": peaks,
        "env": {k: os.environ.get(k) for k in ("FERLAB_CPU_BF16", "OMP_NUM_THREADS")},
        # 1 / 5 / 15-minute load averages: above the threads a run uses, other processes shared the CPUs
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "results": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.optimizer_impl == "auto" else f"-{args.optimizer_impl}"
    suffix += f"-{args.suffix}" if args.suffix else ""
    path = out / f"throughput-{device.type}{backbone_suffix(args.backbone, backbone_args)}{suffix}.json"
    path.write_text(json.dumps(result, indent=2))
    print(markdown_table(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
