"""The errors ferlab reports to its user as one line instead of a traceback.

Every exception a user can cause with what they give ferlab (a file, a flag, a config value, a run
directory) derives from :class:`UserError`; its message names the file (and line), key or argument
and what was expected. ``ferlab`` prints it as ``ferlab <command>: error: <message>`` and exits with
the class's ``exit_code`` (``--debug`` or ``FERLAB_DEBUG=1`` shows the traceback). Anything else
escaping the CLI is a bug in ferlab and keeps its traceback.

Subclasses: :class:`ConfigError`, :class:`CheckpointError`, ``ferlab.data.DatasetError``,
``ferlab.models.WeightsError``, :class:`WriteError` (a run file, figure or table could not be
written: full disk, no permission, read-only file system), ``ferlab.engine.run_lock.RunLockedError``,
``ferlab.engine.divergence.TrainingDiverged`` (exit 3) and ``ferlab.engine.preemption.TrainingStopped``
(training stopped by a signal after a checkpoint: exit 128 + the signal's number).

A subclass may set ``prefix`` (what ``ferlab`` writes before the message, ``"error: "`` by default)
and an instance ``quiet`` (nothing printed: another process of the same torchrun job says it).
"""
from __future__ import annotations

import re


class UserError(Exception):
    """Bad input, or a run condition the user must act on; the message says what and where."""
    exit_code = 2
    prefix = "error: "
    quiet = False


class ConfigError(UserError, ValueError):
    """A config file, recipe, command-line flag or ``--set`` value is malformed or out of range."""


class CheckpointError(UserError, ValueError):
    """A checkpoint is missing, truncated, unsafe to read, or belongs to another model or run."""


class WriteError(UserError, OSError):
    """A file could not be written (``No space left on device``, ``Permission denied``, ``Read-only
    file system``, ...): the message names the file and the reason; the previous version of the file,
    if any, is unchanged. Also an ``OSError`` (``errno``, ``filename``), so that code catching
    ``OSError`` around a write still catches it."""

    def __init__(self, message: str, errno: int | None = None, filename=None):
        super().__init__(message)
        self.errno, self.filename = errno, None if filename is None else str(filename)

    def __str__(self) -> str:
        return str(self.args[0])


def unpickling_refusal(exc: BaseException) -> str | None:
    """What torch's safe loader (``weights_only=True``) refused, without torch's advice to retry
    unsafely -- ``it asks to call posix.system`` -- or ``None`` when the file is simply not a
    pickle torch can read (text, truncated bytes: an unsupported opcode)."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it asks to call {found.group(1)}"
    if re.search(r"Unsupported operand|opcode", text):
        return None
    return "it holds Python objects other than tensors, numbers, strings and containers"


REFUSAL = "ferlab never executes code from files, so such files are not read"


def safe_torch_load(path, error: type[UserError], what: str, not_a: str | None = None):
    """``torch.load(path, weights_only=True)`` on the CPU: tensors, numbers, strings and containers
    only. Any failure raises ``error`` naming the file and what it should have been (``what``:
    ``"checkpoint"``, ``"weight file"``, ...), never torch's advice to load it unsafely. ``not_a``
    (``"a ferlab inference model"``): a file the safe loader refuses is reported as not being that,
    and as not loaded."""
    import pickle
    from pathlib import Path

    import torch
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refusal = unpickling_refusal(e)
        if refusal and not_a:
            raise error(f"{path}: not {not_a}, and it was not loaded: the safe loader (torch.load "
                        f"weights_only=True) refused it ({refusal}); {REFUSAL}") from None
        if refusal:
            raise error(f"{path}: refused by the safe loader (torch.load weights_only=True): {refusal}; "
                        f"{REFUSAL}") from None
        raise error(f"{path}: truncated or not a torch {what} ({path.stat().st_size} bytes the safe loader "
                    f"cannot read)") from None
    except PermissionError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror})") from e
    except Exception as e:  # torch.load on a damaged file raises any type (EOFError, KeyError, RuntimeError, ...)
        detail = (str(e).splitlines() or ["-"])[0].split(". ")[0][:100]
        raise error(f"{path}: truncated or not a torch {what} ({path.stat().st_size} bytes; torch.load: "
                    f"{type(e).__name__}: {detail})") from e


def numpy_load_problem(exc: BaseException) -> str:
    """Why ``numpy.load(allow_pickle=False)`` failed, without numpy's advice to load pickles."""
    text = str(exc)
    if "pickle" in text or "Object arrays" in text:
        return "it holds pickled Python objects, not plain number arrays; ferlab never executes code from files"
    return (text.splitlines() or [type(exc).__name__])[0]


def did_you_mean(word, choices) -> str:
    """`` (did you mean epochs?)`` for a near miss among ``choices``, else ``""``."""
    import difflib
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
