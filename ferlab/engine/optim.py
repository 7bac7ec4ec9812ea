"""Optimizers and learning-rate schedules the recipes name: ``build_optimizer(params, cfg)``,
``build_scheduler(optimizer, cfg, steps_per_epoch)``; :class:`KerasAdam` (``adam_keras``) is Adam
as TensorFlow/Keras computes it (LDLVA's official optimizer)."""
from __future__ import annotations

import math
from collections import defaultdict

import torch

from .config import TrainConfig
from .optim_names import OPTIMIZER_IMPLS, OPTIMIZER_NAMES, PER_STEP_SCHEDULERS, unknown_scheduler  # noqa: F401 (API)


class KerasAdam(torch.optim.Optimizer):
    """Adam as Keras (TF 2) computes it: ``optimizer: adam_keras``, LDLVA's default.

    Per tensor, at its t-th step (t = 1, 2, ...), with gradient g:

        m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
        lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)
        theta -= lr_t m / (sqrt(v) + eps),   eps = 1e-7

    torch.optim.Adam adds its eps (1e-8) to the bias-corrected sqrt(v / (1 - beta2^t)) instead, which
    is Keras' update with eps_torch = eps / sqrt(1 - beta2^t): 3.2e-6 at t = 1, 316x torch's, so tensors
    with small gradients move very differently in the first steps. Keras' Adam has no weight decay;
    ``weight_decay`` here adds weight_decay * theta to g before the moments (torch.optim.Adam's coupled
    L2; the official LDLVA uses none). t counts this tensor's steps (Keras counts the optimizer's, the
    same when every tensor gets a gradient every step). ``foreach`` (default True) updates each
    (device, dtype) group with multi-tensor kernels, ``False`` tensor by tensor (the same arithmetic);
    there is no fused kernel (``fused=True`` raises).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7,
                 weight_decay: float = 0.0, foreach: bool | None = None, fused: bool | None = None):
        if fused:
            raise ValueError("optimizer adam_keras has no fused kernel: optimizer_impl must be auto, foreach or loop")
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"adam_keras needs lr, eps, weight_decay >= 0 and betas in [0, 1); got lr={lr}, "
                             f"betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "foreach": foreach})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; ``closure`` (optional) recomputes the
        loss, which is returned."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("adam_keras does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
            update = _keras_adam_loop if group["foreach"] is False else _keras_adam_foreach
            update(params, [self.state[p] for p in params], group)
        return loss


def _keras_step_size(group: dict, t: int) -> float:
    beta1, beta2 = group["betas"]
    return group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)


def _keras_adam_loop(params: list, states: list, group: dict) -> None:
    beta1, beta2 = group["betas"]
    for p, state in zip(params, states):
        g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-_keras_step_size(group, state["step"]))


def _keras_adam_foreach(params: list, states: list, group: dict) -> None:
    beta1, beta2 = group["betas"]
    by_kind = defaultdict(list)
    for p, state in zip(params, states):
        by_kind[(p.device, p.dtype)].append((p, state))
    for pairs in by_kind.values():
        ps = [p for p, _ in pairs]
        grads = [p.grad for p in ps]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, ps, alpha=group["weight_decay"])
        ms, vs = [s["exp_avg"] for _, s in pairs], [s["exp_avg_sq"] for _, s in pairs]
        torch._foreach_lerp_(ms, grads, 1 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_addcdiv_(ps, ms, denom, [-_keras_step_size(group, s["step"]) for _, s in pairs])


#: optimizer name (:data:`~.optim_names.OPTIMIZER_NAMES`, in its order) -> class
OPTIMIZERS = dict(zip(OPTIMIZER_NAMES, (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, KerasAdam), strict=True))


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer with ``cfg.optimizer_impl``'s kernel. The three kernels compute the
    same update (to float rounding); ``loop`` (one small op per parameter tensor, torch's CPU
    default) spent 20-45% of a ResNet-18 @48 px CPU step in Adam, ``fused`` about 6%
    (``benchmarks/optimizer_kernels.py``, README "Throughput"). ``adam_keras`` has no fused kernel:
    ``auto`` gives it ``foreach``, ``fused`` is refused."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
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
    raise ValueError(unknown_scheduler(cfg.scheduler))


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
