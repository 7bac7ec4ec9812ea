"""Atomic file writes: a temp file in the same folder, fsync, then a rename over the target, so a
crash, a full disk or a concurrent reader never sees a half-written file.

The bottom layer of ferlab (like :mod:`ferlab.errors`): data, models, engine and tools all write
through it. Temp files are named ``.<name>.tmp<pid>`` (:data:`TEMP_NAME`), so a later run can remove
those a killed process left (:func:`ferlab.engine.checkpoint.remove_stale_temp_files`).

A write that fails for a reason outside ferlab (``OSError``: no space left on device, permission
denied, read-only file system, disk quota exceeded; and PyTorch's serializer reporting a short write
as a ``RuntimeError`` from ``inline_container.cc``) raises :class:`~ferlab.errors.WriteError`: one
line naming the file and the reason. The temp file is removed and the previous file, if any, is
left as it was.
"""
from __future__ import annotations

import contextlib
import errno as errno_codes
import os
import re
import shutil
from pathlib import Path

from .errors import WriteError

#: the temp files of :func:`write_atomic`; group 1 is the writer's pid
TEMP_NAME = re.compile(r"^\..+\.tmp(\d+)$")

#: below this many free bytes, a write that failed without saying why is taken for a full disk
NEARLY_FULL = 1 << 20


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _free(folder: Path) -> int | None:
    """Free bytes on the filesystem of ``folder`` (its nearest existing parent), None if unknown."""
    for p in (folder, *folder.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


class _Recorder:
    """A file that remembers the ``OSError`` its ``write`` raised: PyTorch's serializer turns it
    into ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos ...``."""

    def __init__(self, f):
        self._f = f
        self.error: OSError | None = None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def write_problem(exc: BaseException, folder: str | Path,
                  recorded: OSError | None = None) -> tuple[str, int | None] | None:
    """Why a write into ``folder`` failed, as ``(reason, errno)``, when ``exc`` is a failure of the
    machine (an ``OSError``, or torch's serializer failing to write: a full disk); ``None`` for any
    other exception (a bug, an interrupt), which keeps its type. Call it before the partial file is
    removed: a serializer error is taken for a full disk when the write left (nearly) no space."""
    if isinstance(exc, WriteError):
        return None
    err = exc if isinstance(exc, OSError) else recorded
    if err is None and isinstance(exc, RuntimeError) and re.search(r"inline_container|PytorchStreamWriter|"
                                                                   r"unexpected pos", str(exc)):
        free = _free(Path(folder))
        if free is not None and free < NEARLY_FULL:
            return "No space left on device (torch.save stopped short)", errno_codes.ENOSPC
        return f"torch.save failed ({(str(exc).splitlines() or ['-'])[0][:120]})", errno_codes.EIO
    if err is None:
        return None
    return err.strerror or type(err).__name__, err.errno


def _raise_write_error(path: Path, problem: tuple[str, int | None], existed: bool, cause: BaseException):
    """The :class:`~ferlab.errors.WriteError` of a failed write of ``path`` (after its partial file
    is gone: the free space it names is what the filesystem has without it)."""
    reason, code = problem
    if code in (errno_codes.ENOSPC, errno_codes.EDQUOT):
        free = _free(path.parent)
        if free is not None:
            reason += f"; {_size(free)} free in {path.parent}"
    tail = f"; the previous {path.name} is unchanged" if existed and path.is_file() else ""
    raise WriteError(f"{path}: cannot write it: {reason}{tail}", code, path) from cause


def make_dirs(folder: str | Path, for_file: str | Path | None = None) -> None:
    """``mkdir -p folder``; a failure is a :class:`~ferlab.errors.WriteError` naming ``for_file``
    (the file the folder is for) or the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        target = Path(for_file) if for_file is not None else folder
        reason = (e.strerror or type(e).__name__) + (f" (creating the folder {folder})" if for_file else "")
        raise WriteError(f"{target}: cannot write it: {reason}", e.errno, target) from e


def write_atomic(path: str | Path, write, mode: str = "wb") -> None:
    """``write(f)`` to a temp file in the same folder, fsync, then rename over ``path``: a crash
    (or a concurrent reader) never sees a half-written file. A failure of the machine (full disk,
    no permission, read-only file system) is a :class:`~ferlab.errors.WriteError` naming ``path``;
    either way no temp file is left and the previous ``path`` is unchanged."""
    path = Path(path)
    make_dirs(path.parent, path)
    existed = path.is_file()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    rec = None
    try:
        with open(tmp, mode) as f:
            rec = _Recorder(f)
            write(rec)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        problem = write_problem(e, path.parent, rec.error if rec is not None else None)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)   # e.g. a full disk: no half file left beside the good one
        if problem is None:
            raise
        _raise_write_error(path, problem, existed, e)


def append_text(path: str | Path, text: str) -> None:
    """Append ``text`` to ``path`` (a log that grows: ``metrics.jsonl``), fsynced; when the write
    fails the file is cut back to what it held before, and the failure is a
    :class:`~ferlab.errors.WriteError` naming ``path``."""
    path = Path(path)
    make_dirs(path.parent, path)
    size = path.stat().st_size if path.is_file() else None
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        problem = write_problem(e, path.parent)
        with contextlib.suppress(OSError):
            if size is None:
                path.unlink(missing_ok=True)
            elif path.stat().st_size != size:
                os.truncate(path, size)
        if problem is None:
            raise
        _raise_write_error(path, problem, size is not None, e)


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save`` that never leaves a truncated checkpoint behind."""
    import torch
    write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(text: str, path: str | Path) -> None:
    """``Path.write_text`` that never leaves half a file behind (results JSON shared by grid workers)."""
    write_atomic(path, lambda f: f.write(text), "w")
