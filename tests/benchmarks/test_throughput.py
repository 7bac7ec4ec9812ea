"""benchmarks/throughput.py and optimizer_kernels.py measure the trainer's step of a real method."""
import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_counts_the_step_and_writes_a_table():
    throughput = load("throughput")
    r = throughput.bench("eac", "resnet10", 32, 8, steps=2, warmup=1, device=torch.device("cpu"), channels_last=False)
    assert r["optimizer"] == "adam (fused)"
    assert r["images_per_s"] == 8 / r["median_step_s"]
    # EAC's step is two forward/backward passes of the same network: its FLOPs are about twice the baseline's
    base = throughput.bench("baseline", "resnet10", 32, 8, steps=2, warmup=1, device=torch.device("cpu"),
                            channels_last=False)
    assert 1.8 < r["step_flops"] / base["step_flops"] < 2.2
    assert 0 < r["peak_rss_mib"] < 64 * 1024
    base["step_time_vs_baseline"], r["step_time_vs_baseline"] = None, 2.0
    for row in (base, r):
        row["peak_fraction"] = 0.5
    table = throughput.markdown_table({"results": [base, r]}).splitlines()
    assert len(table) == 4 and table[2].startswith("| baseline | 32 |") and "| 1.00 |" in table[2]
    assert table[3].startswith("| EAC | 32 |") and "| 2.00 |" in table[3] and "| 50 |" in table[3]


def test_optimizer_kernels_time_both_kernels_on_every_parameter():
    kernels = load("optimizer_kernels")
    r = kernels.compare("baseline", "resnet10", 32, 8, steps=2, warmup=1, device=torch.device("cpu"))
    from ferlab.models import create_backbone
    assert r["optimized_params"] == sum(p.numel() for p in create_backbone("resnet10", num_classes=7).parameters())
    for k in ("loop", "fused"):
        assert 0 < r[k]["median_optimizer_s"] < r[k]["median_step_s"]
    assert r["step_speedup"] == r["loop"]["median_step_s"] / r["fused"]["median_step_s"]
