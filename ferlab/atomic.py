"""Atomic file writes: a temp file in the same folder, fsync, then a rename over the target, so a
crash, a full disk or a concurrent reader never sees a half-written file.

The bottom layer of ferlab (like :mod:`ferlab.errors`): data, models, engine and tools all write
through it. Temp files are named ``.<name>.tmp<pid>`` (:data:`TEMP_NAME`), so a later run can remove
those a killed process left (:func:`ferlab.engine.checkpoint.remove_stale_temp_files`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

#: the temp files of :func:`write_atomic`; group 1 is the writer's pid
TEMP_NAME = re.compile(r"^\..+\.tmp(\d+)$")


def write_atomic(path: str | Path, write, mode: str = "wb") -> None:
    """``write(f)`` to a temp file in the same folder, fsync, then rename over ``path``: a crash
    (or a concurrent reader) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)   # e.g. a full disk: no half file left beside the good one
        raise


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save`` that never leaves a truncated checkpoint behind."""
    import torch
    write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(text: str, path: str | Path) -> None:
    """``Path.write_text`` that never leaves half a file behind (results JSON shared by grid workers)."""
    write_atomic(path, lambda f: f.write(text), "w")
