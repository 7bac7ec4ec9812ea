"""Atomic full-state checkpoints and text files (temp file + rename) and RNG state capture."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def rng_state() -> dict:
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
    v = state["python"]
    random.setstate((v[0], tuple(v[1]), v[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_atomic(path: str | Path, write, mode: str) -> None:
    """``write(f)`` to a temp file in the same folder, fsync, then rename over ``path``: a crash
    (or a concurrent reader) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, mode) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save`` that never leaves a truncated checkpoint behind."""
    _write_atomic(path, lambda f: torch.save(obj, f), "wb")


def write_text_atomic(text: str, path: str | Path) -> None:
    """``Path.write_text`` that never leaves half a file behind (results JSON shared by grid workers)."""
    _write_atomic(path, lambda f: f.write(text), "w")


def load(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)
