"""The Method of a saved run, rebuilt from its checkpoint (the run config inside) with its weights.

:func:`load_run_method` reads a checkpoint file, :func:`method_from_state` an already loaded state;
:func:`run_classes` is the class names that state holds. Below the trainer: the trainer, the neighbour
features (:mod:`.neighbors`), signals, audits, figures and the predictor rebuild runs through here
(``ferlab.engine.trainer`` re-exports these names).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError
from ..methods import build_method
from ..models import backbone_info, create_backbone
from . import checkpoint as ckpt
from .config import TrainConfig


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; any other name as ``torch.device`` reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_run_method(checkpoint: str | Path, device: str = "auto"):
    """Rebuild the Method of a run from its checkpoint (config inside) and load its weights.

    Returns ``(method, cfg, device)``: the :class:`~ferlab.methods.base.Method` in eval mode on
    ``device``, the run's resolved :class:`TrainConfig`, and the ``torch.device`` it was moved to.
    The class names are :func:`run_classes` of the same file."""
    return method_from_state(ckpt.load_run_state(checkpoint), device, source=str(checkpoint))


def run_classes(state: dict) -> list[str] | None:
    """Class names stored in a checkpoint's state (``None`` for checkpoints written before they were)."""
    return list(state["classes"]) if state.get("classes") is not None else None


def method_from_state(state: dict, device: str = "auto", source: str = "checkpoint"):
    """:func:`load_run_method` on an already loaded checkpoint state; same return tuple.
    ``source`` names the checkpoint in error messages."""
    try:
        cfg = TrainConfig.from_dict(state["config"])
    except ConfigError as e:
        raise CheckpointError(f"{source}: the run config it holds is not valid here: {e}") from e
    dev = resolve_device(device)
    num_classes = state["model"]["backbone.fc.weight"].shape[0] if "backbone.fc.weight" in state["model"] \
        else state["num_classes"]
    backbone = create_backbone(cfg.backbone, num_classes=num_classes, **cfg.backbone_args)
    backbone.pretrained_cfg = backbone.default_cfg = {**backbone_info(cfg.backbone, cfg.weights),    # no file read
                                                      "min_input_size": backbone.min_input_size}
    mean, std = cfg.normalisation(backbone.pretrained_cfg)
    method = build_method(cfg.method, backbone, num_classes, input_size=cfg.input_size, mean=mean, std=std,
                          augment=cfg.augment, **cfg.method_args)
    wrong = ckpt.state_mismatch(method.state_dict(), state["model"], method.per_sample_buffers)
    if wrong:
        raise CheckpointError(f"{source}: its model does not fit the {cfg.method} / {cfg.backbone} its config "
                              f"names ({wrong})")
    method.load_state_dict(state["model"])
    return method.to(dev).eval(), cfg, dev
