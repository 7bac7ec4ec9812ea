"""Run checkpoints: atomic saving (:mod:`ferlab.atomic`'s writes, also imported from here), safe
loading with errors that name the file, whether a checkpoint fits a run, RNG state capture, and
caches computed from a checkpoint."""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from ..atomic import TEMP_NAME, save_atomic, write_atomic, write_text_atomic  # noqa: F401 (engine API)
from ..errors import CheckpointError, WriteError, safe_torch_load
from .run_lock import pid_alive

#: what every ferlab run checkpoint holds (``Trainer.state_dict``); resuming needs all of them
RUN_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "step_in_epoch", "global_step", "rng", "history",
            "epoch_acc", "config", "num_classes", "labels")
#: what evaluating or exporting a run needs
EVAL_KEYS = ("model", "config", "num_classes")


def rng_state() -> dict:
    """The state of Python's, NumPy's, torch's and (when available) every CUDA device's global
    random generators, in tensors and plain values that ``torch.load(weights_only=True)`` reads."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators from a :func:`rng_state` dict (the CUDA ones only when CUDA is
    available in this process and the state holds them)."""
    v = state["python"]
    random.setstate((v[0], tuple(v[1]), v[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_npz_atomic(path: str | Path, **arrays) -> None:
    """``np.savez`` that never leaves half a file behind."""
    write_atomic(path, lambda f: np.savez(f, **arrays))


def save_cache_npz(path: str | Path, **arrays) -> bool:
    """:func:`save_npz_atomic` of a cache (arrays computed from a run, e.g. its ``signals.npz``): a
    cache that cannot be written (a full disk, a read-only run directory) is a one-line note on
    stderr and the caller goes on without it. Returns whether it was written."""
    try:
        save_npz_atomic(path, **arrays)
        return True
    except WriteError as e:
        sys.stderr.write(f"note: {e}; it is a cache, so this goes on without it\n")
        return False


def load_fresh_npz(path: str | Path, source: str | Path) -> dict | None:
    """The arrays of a cache ``path`` computed from ``source`` (e.g. a run's checkpoint), or ``None``
    when there is none or it is older than ``source``."""
    path = Path(path)
    if path.is_file() and path.stat().st_mtime >= Path(source).stat().st_mtime:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    return None


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the ``.<name>.tmp<pid>`` files that an atomic write killed mid-way left in ``folder``
    (only those whose process is gone, or this process's own). Returns the removed paths."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for f in folder.iterdir():
        m = TEMP_NAME.match(f.name)
        if m and f.is_file() and (int(m.group(1)) == os.getpid() or not pid_alive(m.group(1))):
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def run_checkpoint(path: str | Path, expected: str = "a run directory or its checkpoints/last.pt") -> Path:
    """A run directory (its ``checkpoints/last.pt``) or a checkpoint file -> the file; a
    :class:`~ferlab.errors.CheckpointError` naming where it looked when there is none (``expected``:
    what the caller accepts, for the message)."""
    path = Path(path)
    ck = path / "checkpoints" / "last.pt" if path.is_dir() else path
    if not ck.is_file():
        what = "the run directory has no checkpoints/last.pt" if path.is_dir() else "no such file or run directory"
        raise CheckpointError(f"{ck}: no checkpoint ({what}); give {expected}")
    return ck


def load(path: str | Path, not_a: str | None = None) -> dict:
    """Read a torch checkpoint safely (``weights_only=True``: tensors, numbers, strings, containers);
    every failure is a :class:`~ferlab.errors.CheckpointError` that names the file (``not_a``: what
    a file the safe loader refuses is said not to be, :func:`~ferlab.errors.safe_torch_load`)."""
    path = Path(path)
    if not path.is_file():
        where = "is a directory (give a run directory to eval/export, or its checkpoints/last.pt)" \
            if path.is_dir() else "not found"
        raise CheckpointError(f"{path}: checkpoint {where}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint")
    obj = safe_torch_load(path, CheckpointError, "checkpoint", not_a=not_a)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: a torch file holding a {type(obj).__name__}, not a checkpoint dict")
    return obj


def load_run_state(path: str | Path, keys=EVAL_KEYS) -> dict:
    """A ferlab run checkpoint (``checkpoints/last.pt``) with at least ``keys``
    (:data:`EVAL_KEYS`; :data:`RUN_KEYS` to resume); other torch files are refused by what they are."""
    state = load(path)
    if "model" not in state or "config" not in state:
        if state.get("format") == "ferlab-inference-v1":
            what = ("an exported inference model (`ferlab export`); load it with "
                    "ferlab.models.export.load_inference_model")
        elif "state_dict" in state or (state and all(torch.is_tensor(v) for v in state.values())):
            n = len(state.get("state_dict", state))
            what = f"a weights file ({n} entries); use it with --weights, not as a run checkpoint"
        else:
            what = f"not a ferlab run checkpoint (keys: {', '.join(sorted(map(str, state))[:8]) or 'none'})"
        raise CheckpointError(f"{path}: {what}; expected a run's checkpoints/last.pt with {', '.join(EVAL_KEYS)}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete ferlab checkpoint, missing {', '.join(missing)}")
    if not isinstance(state["model"], dict) or not isinstance(state["config"], dict):
        raise CheckpointError(f"{path}: 'model' and 'config' must be dicts in a ferlab checkpoint")
    return state


def position(epoch: int, step: int, steps: int | None = None) -> str:
    """A training position as the logs count it (epochs and steps from 1): checkpoint fields
    ``epoch`` (epochs completed) and ``step_in_epoch`` (steps done in the next one)."""
    if step == 0:
        return f"end of epoch {epoch}" if epoch else "start of training"
    return f"epoch {epoch + 1} step {step}" + (f" of {steps}" if steps else "")


def state_mismatch(expected: dict, found: dict, resizable=()) -> str | None:
    """How the tensors ``found`` (a checkpoint's ``model``) fail to fit a model whose state dict is
    ``expected``: missing / unexpected keys and shape differences (keys in ``resizable``, e.g. a
    method's per-sample buffers, may differ in shape); ``None`` when they fit."""
    def few(keys):
        return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
              if k in found and k not in resizable and torch.is_tensor(found[k])
              and tuple(found[k].shape) != tuple(expected[k].shape)]
    parts = [f"{name} {few(keys)}" for name, keys in (("missing", missing), ("unexpected", unexpected),
                                                     ("shape (checkpoint vs model)", shapes)) if keys]
    return "; ".join(parts) or None


def check_resumable(state: dict, path: str | Path, cfg, method, labels: np.ndarray) -> None:
    """A :class:`~ferlab.errors.CheckpointError` unless the run checkpoint ``state`` (read from
    ``path``) continues this run: written by the same method and backbone (``cfg``), its model fits
    ``method``, and it trained on the same (N,) training ``labels`` (same noise, noise file, data)."""
    saved = state["config"]
    theirs = (saved.get("method"), saved.get("backbone"))
    if theirs != (cfg.method, cfg.backbone):
        raise CheckpointError(f"{path}: written by a {theirs[0]} / {theirs[1]} run, this run is {cfg.method} "
                              f"/ {cfg.backbone}; resume with that run's method and backbone, or train "
                              f"under another --name")
    wrong = state_mismatch(method.state_dict(), state["model"], method.per_sample_buffers)
    if wrong:
        raise CheckpointError(f"{path}: its model does not fit this run's {cfg.method} / {cfg.backbone} "
                              f"with {method.num_classes} classes ({wrong}); resume with the run's own config")
    labels = torch.from_numpy(labels)
    if not torch.equal(state["labels"], labels):
        n = len(state["labels"])
        differ = int((state["labels"] != labels).sum()) if n == len(labels) else None
        raise CheckpointError(f"{path}: its training labels differ from this run's ("
                              + (f"{differ} of {n} differ" if differ is not None
                                 else f"{n} vs {len(labels)} images")
                              + "): another noise setting, noise file or dataset? resume with the run's own "
                                "config, or train under another --name")
