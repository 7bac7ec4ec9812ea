"""Training and evaluation: :func:`fit` and :class:`Trainer` (:mod:`.trainer`), :class:`TrainConfig`
(:mod:`.config`), :func:`evaluate_checkpoint`, :func:`load_run_method` (:mod:`.run_model`) and the
protocol's :func:`summarize` (:mod:`.protocol`). The names are imported on first use, so that
``ferlab.engine.config`` loads without the trainer."""
from __future__ import annotations

__all__ = ["fit", "Trainer", "evaluate_checkpoint", "read_history", "TrainConfig", "with_overrides",
           "load_run_method", "summarize"]


def __getattr__(name: str):
    """The names of ``__all__``, from their modules."""
    if name in ("fit", "Trainer", "evaluate_checkpoint", "read_history"):
        from . import trainer
        return getattr(trainer, name)
    if name in ("TrainConfig", "with_overrides"):
        from . import config
        return getattr(config, name)
    if name == "load_run_method":
        from . import run_model
        return run_model.load_run_method
    if name == "summarize":
        from . import protocol
        return protocol.summarize
    raise AttributeError(f"module 'ferlab.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
