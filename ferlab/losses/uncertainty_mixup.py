"""RUL's relative uncertainty mixup and add-up loss (Zhang et al., NeurIPS 2021).

Two samples' features are mixed with weights proportional to their uncertainty, and
the mixture must predict both labels equally (add-up loss); to do so the network
learns to give the harder sample the larger weight, i.e. a larger uncertainty.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: log-variance is clamped to this range and exponentiated in fp32 (fp16 overflows above exp(11))
LOG_VAR_CLAMP = (-30.0, 30.0)


def sample_uncertainty(log_var: torch.Tensor) -> torch.Tensor:
    """(N, D) log-variance -> (N, 1) uncertainty ``s = mean_d exp(log_var)``, computed in fp32
    on a clamped log-variance so AMP can never overflow it."""
    return log_var.float().clamp(*LOG_VAR_CLAMP).exp().mean(1, keepdim=True)


def uncertainty_mixup(mu: torch.Tensor, log_var: torch.Tensor, perm: torch.Tensor):
    """Mix each sample with its partner ``perm[i]`` by relative uncertainty.

    Args:
        mu: (N, D) features; log_var: (N, D) log-variances; perm: (N,) partner indices
            (a permutation; self-pairs allowed, as in the official code).
    Returns:
        ``(mixed, w_self, w_partner)``: mixed (N, D) = w_self * mu + w_partner * mu[perm],
        with w_self = s_i / (s_i + s_perm(i)) and w_partner = 1 - w_self, both (N, 1) fp32.
    """
    if mu.shape != log_var.shape or mu.ndim != 2:
        raise ValueError(f"mu and log_var must both be (N, D); got {tuple(mu.shape)} and {tuple(log_var.shape)}")
    if perm.shape != (mu.shape[0],):
        raise ValueError(f"perm must be ({mu.shape[0]},), got {tuple(perm.shape)}")
    s = sample_uncertainty(log_var)
    s_partner = s[perm]
    w_self = s / (s + s_partner)
    w_partner = s_partner / (s + s_partner)
    mixed = w_self * mu.float() + w_partner * mu[perm].float()
    return mixed.to(mu.dtype), w_self, w_partner


def add_up_loss(logits: torch.Tensor, y: torch.Tensor, y_perm: torch.Tensor) -> torch.Tensor:
    """``0.5 * CE(logits, y) + 0.5 * CE(logits, y_perm)`` (fixed halves, mean reduction).
    logits (N, K); y, y_perm (N,) class indices."""
    logits = logits.float()
    logits = logits.float()
    return 0.5 * F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(logits, y_perm)
