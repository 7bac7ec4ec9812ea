"""Per-sample noise signals of a trained run: how suspicious each training label looks.

Every signal is oriented so that *higher = more likely a wrong label*:

- ``label_loss``: CE of the given training label (any method; the small-loss criterion);
- each method's own, from ``Method.noise_scores(dataset, device)`` (RUL ``uncertainty``,
  DMUE ``1-confidence`` / ``1-confidence_bank``, ...).

``run_signals(run_dir)`` computes them on the run's own (noisy) training set with the eval
transform, caches them in ``<run>/signals.npz`` (rebuilt when the checkpoint is newer) and adds
``flipped`` (training label != clean label) and ``known`` (a clean label exists).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_fresh_npz, save_cache_npz
from .inference import batched_logits
from .precision import amp_dtype, autocast

#: keys of :func:`run_signals` that are masks, not signals
MASKS = ("flipped", "known")


def default_signal(signals: dict) -> str:
    """The method's own signal (the first it reports), else ``label_loss``."""
    own = [k for k in signals if k not in (*MASKS, "label_loss")]
    return own[0] if own else "label_loss"


@torch.no_grad()
def label_loss(method, dataset, device, batch_size: int = 256, progress: bool = False, amp="auto") -> np.ndarray:
    """(N,) cross-entropy of each training label under ``method.predict`` (eval mode): float32 math on
    the logits of the network run under ``amp`` (:func:`~ferlab.engine.inference.batched_logits`)."""
    out = [F.cross_entropy(logits, b["label"].to(device), reduction="none").cpu()
           for b, logits in batched_logits(method, dataset, device, batch_size, amp=amp, progress=progress,
                                           desc="label loss")]
    return torch.cat(out).numpy()


def noise_signals(method, dataset, device, batch_size: int = 256, progress: bool = False,
                  amp="auto") -> dict[str, np.ndarray]:
    """All signals of ``method`` on ``dataset`` (its labels are the ones judged): name -> (N,) float64.
    The network runs under ``amp`` autocast (:mod:`~ferlab.engine.precision`); every signal is computed
    in float32 from its activations."""
    dtype = amp_dtype(amp, device)
    out = {"label_loss": label_loss(method, dataset, device, batch_size, progress, amp=dtype)}
    with torch.no_grad(), autocast(device, dtype):
        out.update(method.eval().noise_scores(dataset, device, batch_size))
    return {k: (v.float().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)).astype(np.float64)
            for k, v in out.items()}


def run_signals(run_dir: str | Path, device: str = "cpu", progress: bool = True, cache: bool = True) -> dict:
    """Signals of a finished run on its training set, with ``flipped`` / ``known`` masks (cached)."""
    from .run_data import build_train_set
    from .trainer import load_run_method

    run = Path(run_dir)
    ck = run / "checkpoints" / "last.pt"
    path = run / "signals.npz"
    cached = load_fresh_npz(path, ck) if cache else None
    if cached is not None:
        return cached
    method, cfg, dev = load_run_method(ck, device)
    ds = build_train_set(cfg)[0].preload(progress=False)
    out = noise_signals(method, ds, dev, progress=progress)
    known = ds.clean_labels >= 0 if ds.clean_labels is not None else np.zeros(len(ds), dtype=bool)
    out["flipped"] = (ds.labels != ds.clean_labels) & known if ds.clean_labels is not None else known
    out["known"] = known
    if cache:
        save_cache_npz(path, **out)
    return out
