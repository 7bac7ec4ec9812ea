"""A training method that acts at given steps (sends itself a signal, or waits for the test), and the
``ferlab`` command with it registered: the preemption tests' way to stop a run at a known step.

``FERLAB_TEST_AT``: ``[RANK/]CALL:ACTION`` items separated by ``;`` -- at this process's CALL-th
training step (from 1; RANK: only on that torchrun rank), ACTION is ``TERM`` / ``USR1`` / ``INT``
(send that signal to this process; ``TERMx2``: twice at once) or ``wait`` (write
``$FERLAB_TEST_DIR/ready.<rank>`` and wait until ``$FERLAB_TEST_DIR/go`` exists). Every process
writes its pid to ``$FERLAB_TEST_DIR/pid.<rank>`` at its first step. Without ``FERLAB_TEST_AT``
the method trains exactly as ``baseline``.

``FERLAB_TEST_SLOW_STOP``: the save that a stop signal asks for first writes
``$FERLAB_TEST_DIR/stopping`` and sleeps a minute (for a second signal to cut it short).
``FERLAB_TEST_FULL``: writes of the file of that name fail half-way with ENOSPC (rank 0 writes).

Run as a script it is ``ferlab`` (``python signal_run.py train ...``, also under torchrun).
"""
import os
import signal
import sys
import time
from pathlib import Path

from ferlab.methods.base import register_method
from ferlab.methods.baseline import Baseline


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _plan() -> dict[int, str]:
    plan = {}
    for item in filter(None, os.environ.get("FERLAB_TEST_AT", "").split(";")):
        where, _, action = item.partition(":")
        rank, _, call = where.rpartition("/")
        if not rank or int(rank) == _rank():
            plan[int(call)] = action
    return plan


@register_method
class SignalAtStep(Baseline):
    name = "_test_signal"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._calls = 0
        self._plan = _plan()
        self._dir = Path(os.environ["FERLAB_TEST_DIR"]) if os.environ.get("FERLAB_TEST_DIR") else None

    def training_step(self, batch):
        self._calls += 1
        if self._calls == 1 and self._dir is not None:
            (self._dir / f"pid.{_rank()}").write_text(str(os.getpid()))
        action = self._plan.get(self._calls)
        if action == "wait":
            (self._dir / f"ready.{_rank()}").write_text(str(os.getpid()))
            deadline = time.time() + 120
            while not (self._dir / "go").exists() and time.time() < deadline:
                time.sleep(0.02)
        elif action:
            name, _, times = action.partition("x")
            sig = getattr(signal, "SIG" + name)
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                raise RuntimeError(f"the trainer handles no SIG{name} at step {self._calls}")
            for _ in range(int(times or 1)):
                os.kill(os.getpid(), sig)
        return super().training_step(batch)


def _slow_stop_save() -> None:
    from ferlab.engine.trainer import Trainer
    save = Trainer.save

    def slow(self, epoch, step, best=False):
        if self.stops.requested:
            (Path(os.environ["FERLAB_TEST_DIR"]) / "stopping").write_text(str(os.getpid()))
            time.sleep(60)
        return save(self, epoch, step, best)
    Trainer.save = slow


def _full_disk(name: str) -> None:
    import errno

    import ferlab.atomic
    real = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, attr):
            return getattr(self.f, attr)

    def fake_open(path, mode="r", *args, **kw):
        f = real(path, mode, *args, **kw)
        tmp = Path(path).name
        return Full(f) if "w" in mode and tmp.startswith(f".{name}.tmp") else f
    ferlab.atomic.open = fake_open


if __name__ == "__main__":
    if os.environ.get("FERLAB_TEST_SLOW_STOP"):
        _slow_stop_save()
    if os.environ.get("FERLAB_TEST_FULL"):
        _full_disk(os.environ["FERLAB_TEST_FULL"])
    from ferlab.cli import main
    sys.exit(main(sys.argv[1:]))
