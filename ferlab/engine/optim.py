"""Optimizers and learning-rate schedules the recipes name: ``build_optimizer(params, cfg)``,
``build_scheduler(optimizer, cfg, steps_per_epoch)``."""
from __future__ import annotations

import torch

from .config import TrainConfig

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "loop")


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer with ``cfg.optimizer_impl``'s kernel. The three kernels compute the
    same update (to float rounding); ``loop`` (one small op per parameter tensor, torch's CPU
    default) spent 20-45% of a ResNet-18 @48 px CPU step in Adam, ``fused`` about 6%
    (``benchmarks/optimizer_kernels.py``, README "Throughput")."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be adam, adamw or sgd, got {cfg.optimizer!r}")
    if cfg.optimizer_impl not in OPTIMIZER_IMPLS:
        raise ValueError(f"optimizer_impl must be one of {OPTIMIZER_IMPLS}, got {cfg.optimizer_impl!r}")
    kind = OPTIMIZERS[cfg.optimizer]
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.optimizer == "sgd":
        kwargs["momentum"] = cfg.momentum
    params = list(params)
    impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}
    if cfg.optimizer_impl != "auto":
        return kind(params, **kwargs, **impl[cfg.optimizer_impl])
    try:
        return kind(params, **kwargs, fused=True)
    except (RuntimeError, ValueError):   # no fused kernel for this device / dtype in this torch build
        return kind(params, **kwargs, foreach=True)


def build_scheduler(opt, cfg: TrainConfig, steps_per_epoch: int = 1):
    """The lr schedule; ``linear`` (LA-Net: 1 -> 0 over the whole run) is stepped every optimizer
    step (``PER_STEP_SCHEDULERS``), the others once per epoch."""
    if cfg.scheduler == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, LinearDecay(steps_per_epoch * cfg.epochs))
    if cfg.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.milestones or [], gamma=cfg.gamma)
    if cfg.scheduler in ("none", None):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    if cfg.scheduler == "piecewise":
        return torch.optim.lr_scheduler.LambdaLR(opt, [PiecewiseLR(g.get("schedule")) for g in opt.param_groups])
    raise ValueError(f"scheduler must be exponential, cosine, step, piecewise, linear or none, got {cfg.scheduler!r}")


PER_STEP_SCHEDULERS = ("linear",)


class LinearDecay:
    """lr multiplier 1 - step / total (LinearLR from 1 to 0), floored at 0."""

    def __init__(self, total: int):
        self.total = max(int(total), 1)

    def __call__(self, step: int) -> float:
        return max(0.0, 1.0 - step / self.total)


class PiecewiseLR:
    """lr multiplier per epoch from a param group's ``schedule``: ``[[bound, mult], ...]``, ``mult``
    applies while ``epoch < bound`` (the last one after the last bound); no schedule -> 1."""

    def __init__(self, schedule):
        self.schedule = [tuple(map(float, step)) for step in schedule or []]

    def __call__(self, epoch: int) -> float:
        for bound, mult in self.schedule:
            if epoch < bound:
                return mult
        return self.schedule[-1][1] if self.schedule else 1.0
