"""The optimizer, optimizer-kernel and lr-schedule names a config may give.

Plain names, no torch: :mod:`.config_check` validates a config against them and :mod:`.optim` builds
what they name (``OPTIMIZERS``, ``build_scheduler``), so the check never imports the builder (which
imports the config).
"""
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "adam_keras")
OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "loop")
SCHEDULERS = ("exponential", "cosine", "step", "piecewise", "linear", "none")
#: schedules stepped every optimizer step; the others once per epoch
PER_STEP_SCHEDULERS = ("linear",)


def unknown_scheduler(name) -> str:
    """The message for a ``scheduler`` that is not one of :data:`SCHEDULERS`."""
    return f"scheduler must be {', '.join(SCHEDULERS[:-1])} or {SCHEDULERS[-1]}, got {name!r}"
