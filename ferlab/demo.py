"""``ferlab demo``: CE on synthetic faces with 30% symmetric label noise, on the CPU.

Shows what label noise does to plain cross-entropy: the network fits (memorises)
part of the flipped training labels, and its test accuracy on clean labels falls
below that of the same network trained on clean labels.
"""
from __future__ import annotations

import time

from .engine.config import TrainConfig
from .engine.trainer import fit

DEMO = dict(method="baseline", dataset="synthetic", dataset_args={"n": 3500}, backbone="resnet10", input_size=64,
            batch_size=64, optimizer="adam", lr=1e-3, weight_decay=1e-4, scheduler="cosine",
            augment={"flip": 0.5}, epochs=6, eval_dataset_args={"n": 1000}, mean_last_k=3)


def demo_config(noise_rate: float, epochs: int | None = None, device: str = "auto",
                out_dir: str = "runs") -> TrainConfig:
    """The demo's run: CE on synthetic faces (:data:`DEMO`) with symmetric noise at ``noise_rate``
    (0: clean), named ``demo-ce-synthetic-sym<rate>`` or ``demo-ce-synthetic-clean``; ``epochs``
    overrides the demo's 6."""
    d = dict(DEMO, device=device, out_dir=out_dir, noise="symmetric" if noise_rate else "none", noise_rate=noise_rate,
             name=f"demo-ce-synthetic-{'sym' + format(noise_rate, 'g') if noise_rate else 'clean'}")
    if epochs:
        d["epochs"] = epochs
    return TrainConfig(**d)


def demo_threads(requested: int | None = None) -> int:
    """Torch intra-op threads for the demo: ``requested``, else the CPUs this process may run on
    minus the ones other processes keep busy (1-minute load average), between 1 and 4. A ResNet-10
    at 64 px gains little beyond 4 threads, and on a loaded machine more threads than free cores
    make every step wait for the slowest, preempted thread."""
    import os
    if requested:
        return requested
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:          # macOS, Windows
        cpus = os.cpu_count() or 1
    try:
        free = cpus - int(round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        free = cpus
    return max(1, min(4, cpus, free))


def run_demo(epochs: int | None = None, device: str = "auto", out_dir: str = "runs", clean_reference: bool = True,
             threads: int | None = None) -> dict:
    """Train the noisy run (and the clean reference), print the table; returns both summaries and
    ``wall_s`` / ``threads``."""
    import torch
    t0 = time.time()
    previous = torch.get_num_threads()
    torch.set_num_threads(demo_threads(threads))
    try:
        noisy = fit(demo_config(0.3, epochs, device, out_dir))
        clean = fit(demo_config(0.0, epochs, device, out_dir)) if clean_reference else None
    finally:
        used = torch.get_num_threads()
        torch.set_num_threads(previous)
    fitrep, prot = noisy["train_fit"], noisy["protocol"]
    rows = [
        ("train, intact samples: accuracy", fitrep["acc_intact"]),
        ("train, flipped samples: predicts the noisy label (memorised)", fitrep["memorised_flipped"]),
        ("train, flipped samples: predicts the true label", fitrep["recovered_flipped"]),
        ("train, all samples vs noisy labels", fitrep["acc_noisy_labels"]),
        ("test (clean labels), last epoch", prot["last"]),
    ]
    if "best_val" in prot:
        rows.append((f"test, at best validation epoch ({prot['best_val_epoch']})", prot["best_val"]))
    if clean is not None:
        rows.append(("test, same network trained on clean labels (last epoch)", clean["protocol"]["last"]))
    width = max(len(r[0]) for r in rows)
    print()
    print(f"ferlab demo: CE baseline, synthetic faces, 30% symmetric noise "
          f"({noisy['noise']['realised_rate']:.1%} realised, {fitrep['n_flipped']} of "
          f"{fitrep['n_flipped'] + fitrep['n_intact']} labels flipped)")
    print(f"{'':{width}s}  accuracy")
    for name, val in rows:
        print(f"{name:{width}s}  {val:8.3f}")
    if clean is not None:
        print(f"\nnoise cost on the test set: {clean['protocol']['last'] - prot['last']:+.3f} "
              f"(clean-label run minus noisy-label run)")
    print(f"run directory: {noisy['run']}" + (f" (clean reference: {clean['run']})" if clean else ""))
    wall = time.time() - t0
    print(f"wall time {wall:.0f} s ({'two runs' if clean is not None else 'one run'}, {used} torch threads)")
    return {"noisy": noisy, "clean": clean, "wall_s": wall, "threads": used}
