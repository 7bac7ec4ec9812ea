"""Predicted class probabilities of a trained run on images of its training set.

``run_train_probs(run)`` is cached in ``<run>/train-probs.npz`` (rebuilt when the checkpoint is
newer), like the run's noise signals in ``signals.npz``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..engine.checkpoint import load_fresh_npz, save_cache_npz
from ..engine.inference import batched_logits


@torch.no_grad()
def predict_probs(method, dataset, device, batch_size: int = 256, progress: bool = False, amp="auto") -> np.ndarray:
    """(N, C) float64 softmax of ``method.predict`` (eval mode, eval transform) on every image of
    ``dataset``, in dataset order; the network under ``amp`` autocast, the softmax in float32."""
    out = [torch.softmax(logits, 1).cpu()
           for _, logits in batched_logits(method, dataset, device, batch_size, amp=amp, progress=progress,
                                           desc="probabilities")]
    return torch.cat(out).double().numpy()


def run_train_probs(run_dir: str | Path, device: str = "cpu", progress: bool = True, cache: bool = True) -> np.ndarray:
    """(N, C) probabilities of a finished run on its own training set (the rows its signals cover)."""
    from ..engine.run_data import build_train_set
    from ..engine.trainer import load_run_method

    run = Path(run_dir)
    ck = run / "checkpoints" / "last.pt"
    path = run / "train-probs.npz"
    cached = load_fresh_npz(path, ck) if cache else None
    if cached is not None:
        return cached["probs"]
    method, cfg, dev = load_run_method(ck, device)
    ds = build_train_set(cfg)[0].preload(progress=False)
    probs = predict_probs(method, ds, dev, progress=progress)
    if cache:
        save_cache_npz(path, probs=probs, labels=ds.labels)
    return probs
