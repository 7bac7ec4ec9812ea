"""A trained method's outputs on every image of a dataset (eval mode, eval transform, no grad).

:func:`batched_logits` is the one loop: :func:`predict_dataset` (the trainer's and ``ferlab eval``'s
predictions, split over DDP ranks), :func:`ferlab.engine.signals.label_loss` and
:func:`ferlab.audit.probs.predict_probs` reduce its logits. :func:`dataset_features` is the same
for the penultimate features (:mod:`ferlab.engine.neighbors`, :func:`ferlab.viz.embedding.extract_features`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..progress import progress_bar
from .distributed import DistInfo, all_gather_objects
from .precision import amp_dtype, autocast, use_channels_last


@torch.no_grad()
def batched_logits(method, dataset, device, batch_size: int = 256, rows=None, amp="auto", channels_last="auto",
                   progress: bool = False, desc: str = "predict"):
    """Yield ``(batch, logits)`` over ``dataset`` (or its ``rows``), in order, ``batch_size`` images at a
    time: ``batch`` is ``dataset.get_batch``'s dict, ``logits`` (B, C) float32 = ``method.predict`` of the
    prepared images on ``device``, the network run under autocast to ``amp`` (a setting of
    :func:`~ferlab.engine.precision.amp_dtype`, a dtype, or ``None``: float32) and in ``channels_last``
    (``auto | on | off`` or a bool). ``method`` is put in eval mode."""
    method.eval()
    device = torch.device(device)
    amp = amp_dtype(amp, device)
    channels_last = use_channels_last(channels_last, device, amp)
    if channels_last:       # weights too, as the trainer holds them: the same kernels, the same logits
        method.to(memory_format=torch.channels_last)
    rows = np.arange(len(dataset)) if rows is None else np.asarray(rows)
    for lo in progress_bar(range(0, len(rows), batch_size), desc=desc, disable=not progress, leave=False):
        b = dataset.get_batch(rows[lo:lo + batch_size])
        x = method.prepare(b["image"].to(device, non_blocking=True))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = method.predict(x)
        yield b, logits.float()


@torch.no_grad()
def predict_dataset(method, dataset, device, batch_size: int = 256, info: DistInfo | None = None,
                    amp="auto", channels_last="auto", progress: bool = False, desc: str = "eval") -> np.ndarray:
    """Predictions for every sample of ``dataset`` (each rank takes a stride, results are
    all-gathered without padding duplicates; ``info``: this process's place in the job, default a single
    process). Returns (N,) int predictions."""
    info = DistInfo() if info is None else info
    preds = [logits.argmax(1).cpu() for _, logits in batched_logits(
        method, dataset, device, batch_size, np.arange(len(dataset))[info.rank::info.world_size], amp, channels_last,
        progress and info.is_main, desc)]
    mine = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    out = np.full(len(dataset), -1, dtype=np.int64)
    for rank, part in enumerate(all_gather_objects(mine, info)):
        out[np.arange(len(dataset))[rank::info.world_size]] = part
    return out


@torch.no_grad()
def dataset_features(method, dataset, device, batch_size: int = 256, progress: bool = False,
                     desc: str = "features", amp="auto", channels_last="auto") -> np.ndarray:
    """(N, D) float32 penultimate features (``method.features`` of the prepared images, eval mode, the
    network under autocast to ``amp`` as in :func:`batched_logits`) of every sample of ``dataset`` in
    order, ``batch_size`` images at a time on ``device``; the method's train / eval mode is restored."""
    was_training = method.training
    method.eval()
    dev = torch.device(device)
    amp = amp_dtype(amp, dev)
    channels_last = use_channels_last(channels_last, dev, amp)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    out = []
    for lo in progress_bar(range(0, len(dataset), batch_size), desc=desc, disable=not progress, leave=False):
        b = dataset.get_batch(np.arange(lo, min(lo + batch_size, len(dataset))))
        x = method.prepare(b["image"].to(dev))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(dev, amp):
            f = method.features(x)
        out.append(f.float().cpu())
    method.train(was_training)
    return torch.cat(out).numpy()
