"""Was this run trained already? A run folder whose ``config.yaml`` is the config asked for.

:func:`ferlab.fit` / :func:`ferlab.train` with ``reuse=True`` return a finished run of the same config
without training it again, and continue an interrupted one from its checkpoint: what lets notebooks and
scripts share the runs they have in common through one output folder.

"The same config" is compared as the trainer writes it (:func:`as_trained`: the method's defaults
filled in, ``amp`` / ``channels_last`` as they resolve on the device), leaving out the settings that do
not change what is trained (:data:`NOT_COMPARED`).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..methods import method_class
from .config import TrainConfig
from .precision import amp_dtype, dtype_name, use_channels_last
from .run_model import resolve_device

#: settings that change how a run is shown, checkpointed or where it runs, not the network it trains
NOT_COMPARED = ("progress", "tensorboard", "log_every", "checkpoint_every", "cache", "eval_batch_size", "device")


def as_trained(cfg: TrainConfig) -> dict:
    """``cfg`` as the trainer resolves and records it in the run's ``config.yaml``, as a plain dict
    (lists, not tuples): every ``None`` hyperparameter from the method's defaults, ``amp`` and
    ``channels_last`` as they resolve on ``cfg.device``."""
    resolved = cfg.resolved(method_class(cfg.method).defaults).validate()
    device = resolve_device(resolved.device)
    dtype = amp_dtype(resolved.amp, device)
    resolved.amp = dtype_name(dtype)
    resolved.channels_last = "on" if use_channels_last(resolved.channels_last, device, dtype) else "off"
    return json.loads(json.dumps(resolved.to_dict()))


def config_differences(wanted: TrainConfig, run_dir: str | Path) -> list[str] | None:
    """The settings in which the run in ``run_dir`` differs from ``wanted`` (``key: run value -> wanted
    value``, :data:`NOT_COMPARED` left out); ``None`` when the folder holds no run config."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    have = json.loads(json.dumps(TrainConfig.from_yaml(path).to_dict()))
    want = as_trained(wanted)
    return [f"{k}: {have.get(k)!r} -> {want[k]!r}" for k in want
            if k not in NOT_COMPARED and have.get(k) != want[k]]


def run_state(cfg: TrainConfig) -> str:
    """What ``<out_dir>/<run name>`` holds for ``cfg``: ``finished`` (``summary.json`` and the same
    config), ``partial`` (a checkpoint of the same config, not finished), ``other`` (a run of another
    config) or ``none``."""
    run = Path(cfg.out_dir) / cfg.run_name()
    differences = config_differences(cfg, run)
    if differences is None:
        return "none"
    if differences:
        return "other"
    if (run / "summary.json").is_file():
        return "finished"
    return "partial" if (run / "checkpoints" / "last.pt").is_file() else "none"
