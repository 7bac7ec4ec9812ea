"""One training process per run directory: the lock file ``<run>/.run.lock``.

``fit`` takes the lock before it writes anything into the run directory and releases it when it
returns or raises. The lock is an exclusive ``flock`` on the file, which the kernel drops when its
process dies, so a killed run never blocks the next one; the file itself holds the holder's
record (pid, host, start time, command) for the message a second process gets. A lock file left
by a process that is gone (SIGKILL, power loss) is reported and taken over.

``benchmarks/run_grid.py`` claims a run for a grid worker with its own ``.grid.lock`` before it
calls ``fit`` in the same process; the two files do not interact.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the record alone decides (pid liveness on this host)
    fcntl = None

LOCK_NAME = ".run.lock"


class RunLockedError(UserError, RuntimeError):
    """Another live process trains in this run directory."""


def _read_record(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        rec = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        rec = {"unreadable": raw[:80].decode("utf-8", "replace")}
    return rec if isinstance(rec, dict) else {"unreadable": str(rec)[:80]}


def describe(rec: dict) -> str:
    """``pid 123 on host, started 2024-05-01 12:00:00 (ferlab train ...)`` from a lock record."""
    if not rec:
        return "a process that has not written its record yet"
    if "unreadable" in rec:
        return f"an unknown process (unreadable lock record {rec['unreadable']!r})"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec["started"])) if "started" in rec else "?"
    cmd = f" ({rec['command']})" if rec.get("command") else ""
    return f"pid {rec.get('pid', '?')} on {rec.get('host', '?')}, started {started}{cmd}"


def pid_alive(pid) -> bool:
    """Whether process ``pid`` (an int or its text) exists on this host (another user's counts)."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``RunLock(run_dir).acquire()`` ... ``release()`` (or a ``with`` block).

    After ``acquire``, ``took_over`` holds the record of a lock whose holder had died (else ``None``).
    Raises :class:`RunLockedError`, naming the holder, when a live process holds the directory.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.took_over: dict | None = None

    def refuse(self, rec: dict):
        """Raise :class:`RunLockedError` naming the holder ``rec``."""
        raise RunLockedError(f"{self.run_dir} is in use by another training process: {describe(rec)}. Wait for "
                             f"it to finish or stop it, or train under another --name (lock file {self.path})")

    def _try_flock(self, fd: int) -> bool:
        """Exclusive lock within ~0.3 s (a concurrent :func:`lock_holder` peek holds it shared for
        microseconds)."""
        for attempt in range(4):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                time.sleep(0.1 * attempt)
        return False

    def acquire(self) -> RunLock:
        """Take the run directory (created if missing) and write this process's record into the
        lock file; returns ``self``.

        Raises:
            RunLockedError: A live process holds the directory.
            UserError: The lock file cannot be created.
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"{self.path}: cannot create the run directory's lock file ({e.strerror})") from e
        while True:
            if fcntl is None:
                rec = _read_record(fd)
                if rec.get("host") == socket.gethostname() and rec.get("pid") != os.getpid() \
                        and pid_alive(rec.get("pid")):
                    os.close(fd)
                    self.refuse(rec)
                break
            if not self._try_flock(fd):
                rec = _read_record(fd)
                os.close(fd)
                self.refuse(rec)
            try:        # the file may have been removed by a holder releasing it meanwhile: lock the new one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        previous = _read_record(fd)
        self.took_over = previous or None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                  "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300]}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode("utf-8"))
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (if it is still this lock's) and unlock; a no-op when not held."""
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            if fcntl is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(run_dir: str | Path) -> dict | None:
    """The record of the live process that holds ``run_dir`` (``{}`` if it has not written one yet),
    or ``None`` when nobody does (no lock file, or its holder is gone)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        if fcntl is None:
            rec = _read_record(fd)
            alive = rec.get("host") == socket.gethostname() and pid_alive(rec.get("pid"))
            return rec if alive and rec.get("pid") != os.getpid() else None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_record(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_free(run_dir: str | Path) -> None:
    """Raise :class:`RunLockedError` when a live process holds ``run_dir`` (a cheap early check;
    :meth:`RunLock.acquire` is the one that counts)."""
    holder = lock_holder(run_dir)
    if holder is not None:
        RunLock(run_dir).refuse(holder)
