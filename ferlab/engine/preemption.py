"""Stopping a training run on a signal, with a checkpoint: what a cluster scheduler, a cloud
preemption, ``docker stop`` or ``kill`` sends (SIGTERM), what SLURM's ``--signal=USR1@120`` sends
before the time limit (SIGUSR1), and a first Ctrl-C (SIGINT).

While ``Trainer.fit`` runs, :class:`StopSignals` replaces the default handling of these signals
with a handler that only notes the first one. The trainer looks at the note after every optimizer
step, writes a full checkpoint at that step (the usual atomic, NaN-checked save, so ``--resume``
continues bit-exact) and raises :class:`TrainingStopped`, whose exit status is 128 + the signal's
number (143 SIGTERM, 138 SIGUSR1, 130 SIGINT on Linux). A signal noticed between epochs (during the
evaluation) stops right after that epoch's checkpoint.

A second signal stops at once: the previous handling is restored and the signal delivered again (the
process dies of it; SIGINT raises ``KeyboardInterrupt``). The same signal again within
:data:`REPEAT_WINDOW` seconds is the same request: torchrun's agent forwards a SIGTERM or Ctrl-C that
also reached its workers directly (a process group, a SLURM step), and that copy must not cut the
checkpoint short.

Under torchrun every rank must stop at the same step, whichever rank (or the agent) got the signal:
:class:`RankAgreement` all-reduces (MAX) the signal number, and rank 0's verdict on a time-based
checkpoint, at the steps where the ranks decide.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import torch

from ..errors import UserError

#: the signals that stop training with a checkpoint (SIGUSR1 where the platform has it)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGINT") if hasattr(signal, name))
#: seconds within which the same signal again is taken for the same request (see the module docstring)
REPEAT_WINDOW = 1.0


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; ``signal N`` for a number the platform does not name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class TrainingStopped(UserError):
    """Training stopped on a signal after checkpointing the current step (``checkpoint``: the file,
    ``position``: where it stands); ``exit_code`` is 128 + ``signum``. Under torchrun only rank 0's
    is printed by ``ferlab`` (the others are ``quiet``)."""
    prefix = ""

    def __init__(self, message: str, signum: int, checkpoint=None, position: str | None = None,
                 quiet: bool = False):
        super().__init__(message)
        self.signum, self.checkpoint, self.position, self.quiet = signum, checkpoint, position, quiet
        self.exit_code = 128 + signum

    def __reduce__(self):
        return type(self), (str(self), self.signum, self.checkpoint, self.position, self.quiet)


class StopSignals:
    """Context manager: while inside, the first of :data:`STOP_SIGNALS` is noted in :attr:`signum`
    (and :attr:`received_at`) instead of ending the process; a second one stops at once.

    Handlers are installed only in the main thread and only over the default handling (a signal
    that is ignored, e.g. SIGINT of a background job, or that the program handles itself is left
    alone); the previous handlers come back on exit, also on an error."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signum: int | None = None
        self.received_at: float | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """A stop signal has been noted."""
        return self.signum is not None

    def __enter__(self) -> StopSignals:  # noqa: PYI034 (Self needs Python 3.11)
        self.signum = self.received_at = None
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in self.signals:
            current = signal.getsignal(sig)
            if current in (signal.SIG_DFL, signal.default_int_handler):
                self._previous[sig] = current
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def restore(self) -> None:
        """Put back the handlers that were in place before ``__enter__``."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        now = time.monotonic()
        if self.signum is None:
            self.signum, self.received_at = signum, now
            return
        if signum == self.signum and now - self.received_at < REPEAT_WINDOW:
            return
        # a second request: the previous handling (the default), now
        self.restore()
        os.kill(os.getpid(), signum)


class RankAgreement:
    """The decisions every rank of a torchrun job must take alike at a step: stop (the largest signal
    number any rank noted; 0: none) and a time-based checkpoint (rank 0's clock decides). One
    all-reduce (MAX) of two ints; outside torchrun the local values."""

    def __init__(self, distributed: bool, device: torch.device):
        self.distributed = distributed
        # the default group's backend takes tensors on the trainer's device (NCCL: CUDA)
        self.device = device if device.type == "cuda" else torch.device("cpu")

    def __call__(self, signum: int | None, due: bool) -> tuple[int, bool]:
        local = (int(signum or 0), int(bool(due)))
        if not self.distributed:
            return local[0], bool(local[1])
        import torch.distributed as dist
        t = torch.tensor(local, dtype=torch.int32, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        signum, due = t.tolist()
        return signum, bool(due)
