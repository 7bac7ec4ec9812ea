"""LDLVA's uncertainty-aware adaptive label distribution learning (Le et al., WACV 2023).

Every training sample i has K neighbours j from an auxiliary space (valence-arousal, landmarks,
features). Their predicted class distributions, weighted by a fixed local similarity a_ij and a
learned pair calibration c_ij, form a neighbour distribution ld_i; a learned per-sample
certainty lambda_i mixes it with the given one-hot label:

    t_i = lambda_i onehot(y_i) + (1 - lambda_i) ld_i,   lambda_i = sigmoid(lambda_hat_i)

and the network is trained with cross-entropy to t (plus a discriminative centre loss).
lambda_hat is stepped with the gradient of that loss with respect to lambda_hat itself
(:func:`lambda_hat_gradient`), as the official code's tape computes it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def local_similarity(anchor: torch.Tensor, neighbours: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """a_ij = exp(-||v_i - v_j||_1 / scale) of auxiliary coordinates.

    Args:
        anchor: (N, A) auxiliary coordinates (e.g. valence, arousal).
        neighbours: (N, K, A) coordinates of each sample's K neighbours.
    Returns: (N, K) in (0, 1].
    """
    return torch.exp(-(anchor[:, None, :] - neighbours).abs().sum(-1) / scale)


class KerasBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d with Keras ``BatchNormalization`` semantics (the official LDLVA is Keras):
    ``eps`` 1e-3; moving statistics ``momentum`` old + (1 - ``momentum``) batch with ``momentum``
    0.99; the *biased* batch variance in the moving variance. (torch.nn.BatchNorm1d: eps 1e-5,
    0.9 old + 0.1 batch, unbiased variance.) Input (N, C). Training normalises with the batch mean
    and biased variance (as torch does), eval with the moving statistics. ``momentum`` is Keras'
    (the weight of the old value); the attribute ``self.momentum`` keeps torch's meaning (0.01)."""

    def __init__(self, num_features: int, eps: float = 1e-3, momentum: float = 0.99):
        super().__init__(num_features, eps=eps, momentum=1.0 - momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) -> (N, C); in training also updates the moving statistics (Keras' rule)."""
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            batch = x.detach().float()
            self.running_mean.lerp_(batch.mean(0), self.momentum)
            self.running_var.lerp_(batch.var(0, unbiased=False), self.momentum)
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


SIMNET_BATCH_NORMS = {"keras": KerasBatchNorm1d, "torch": nn.BatchNorm1d}


class AdaptiveSimNet(nn.Module):
    """Pair calibration c_ij = sigmoid(max(MLP([f_i, f_j]), floor)): Linear(2D, 512) -> BN -> ReLU ->
    Linear(512, 256) -> BN -> ReLU -> Linear(256, 1). The official floor of -1.3 keeps c >= 0.214.
    ``batch_norm``: ``keras`` (official, :class:`KerasBatchNorm1d`) or ``torch`` (nn.BatchNorm1d's
    eps 1e-5, momentum 0.1, unbiased moving variance)."""

    def __init__(self, dim: int = 512, floor: float = -1.3, batch_norm: str = "keras"):
        super().__init__()
        if batch_norm not in SIMNET_BATCH_NORMS:
            raise ValueError(f"batch_norm must be 'keras' or 'torch', got {batch_norm!r}")
        norm = SIMNET_BATCH_NORMS[batch_norm]
        self.net = nn.Sequential(nn.Linear(2 * dim, 512), norm(512), nn.ReLU(inplace=True),
                                 nn.Linear(512, 256), norm(256), nn.ReLU(inplace=True), nn.Linear(256, 1))
        self.floor = float(floor)

    def forward(self, anchor: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        """(B, D) anchor features, (B, K, D) neighbour features -> (B, K) calibration in [sigmoid(floor), 1)."""
        B, K, D = neighbours.shape
        pair = torch.cat([anchor[:, None, :].expand(B, K, D), neighbours], -1).reshape(B * K, 2 * D)
        return torch.sigmoid(self.net(pair).clamp(min=self.floor)).reshape(B, K)


def neighbour_distribution(similarity: torch.Tensor, calibration: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """ld_i = sum_j w_ij p_j / sum_j w_ij with w = a * c.

    Args: similarity a (B, K), calibration c (B, K), neighbour probabilities p (B, K, C).
    Returns: (B, C), rows sum to 1.
    """
    w = similarity * calibration
    return (w[..., None] * probs).sum(1) / w.sum(1, keepdim=True).clamp_min(1e-12)


def uncertainty_target(lam: torch.Tensor, labels: torch.Tensor, ld: torch.Tensor) -> torch.Tensor:
    """t = lam onehot(y) + (1 - lam) ld: (B,), (B,), (B, C) -> (B, C)."""
    onehot = F.one_hot(labels, ld.shape[1]).to(ld.dtype)
    return lam[:, None] * onehot + (1 - lam[:, None]) * ld


def soft_cross_entropy(probs: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                       eps: float = 1e-10) -> torch.Tensor:
    """mean_i w_i sum_c -t_ic log(p_ic + eps) (the official form, on probabilities)."""
    per = -(target * torch.log(probs + eps)).sum(1)
    return (per * weights).mean() if weights is not None else per.mean()


def lambda_hat_gradient(probs: torch.Tensor, labels: torch.Tensor, ld: torch.Tensor, lam: torch.Tensor,
                        weights: torch.Tensor | None = None, eps: float = 1e-10) -> torch.Tensor:
    """d L_cls / d lambda_hat_i = d L_cls / d lambda_i * lambda_i (1 - lambda_i), the gradient the
    official code applies to lambda_hat (lambda = sigmoid(lambda_hat)), with
    d L_cls / d lambda_i = (w_i / B) (-log(p_{i,y_i} + eps) + sum_c ld_ic log(p_ic + eps)):
    positive (lambda falls) when the model prefers the neighbour distribution to the given label.

    probs (B, C), labels (B,), ld (B, C), lam = sigmoid(lambda_hat) (B,), weights (B,) -> (B,).
    """
    logp = torch.log(probs + eps)
    g = -logp.gather(1, labels[:, None]).squeeze(1) + (ld * logp).sum(1)
    if weights is not None:
        g = g * weights
    return g * lam * (1 - lam) / len(labels)


class DiscriminativeCentres(nn.Module):
    """Class centres (C, D), zero-initialised, with LDLVA's certainty-weighted centre loss and its
    manual update (SGD step alpha towards the members, then a separation step on
    Phi = sum_{i<j} exp(-||c_i - c_j||^2 / D))."""

    def __init__(self, num_classes: int, dim: int, alpha: float = 0.5, separation: float = 0.1):
        super().__init__()
        self.register_buffer("centres", torch.zeros(num_classes, dim))
        self.alpha, self.separation = float(alpha), float(separation)

    def loss(self, feats: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """1/2 sum_n lam_n ||x_n - c_{y_n}||^2 / M for (M, D) features, (M,) labels, (M,) weights
        (the certainties, constants here)."""
        diff = feats - self.centres[labels].to(feats.dtype)
        return 0.5 * (weights.detach()[:, None] * diff.pow(2)).sum() / len(feats)

    @torch.no_grad()
    def update(self, feats: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, world_sum=None) -> None:
        """c_k += alpha sum_{y_n = k} lam_n (x_n - c_k) / ((n_k + 1) M); then c -= alpha * sep * dPhi/dc.
        ``world_sum`` (optional) sums a tensor over DDP ranks so every rank applies the same step."""
        C = len(self.centres)
        feats = feats.detach().float()
        diff = weights.detach().float()[:, None] * (feats - self.centres[labels])
        num = torch.zeros_like(self.centres).index_add_(0, labels, diff)
        count = torch.bincount(labels, minlength=C).to(num)
        total = torch.tensor([float(len(feats))], device=num.device)
        if world_sum is not None:
            num, count, total = world_sum(num), world_sum(count), world_sum(total)
        self.centres += self.alpha * num / ((count[:, None] + 1) * total)
        self.centres -= self.alpha * self.separation * separation_gradient(self.centres)


def separation_gradient(centres: torch.Tensor) -> torch.Tensor:
    """d/dc of Phi = sum_{i<j} exp(-||c_i - c_j||^2 / D): (C, D)."""
    D = centres.shape[1]
    diff = centres[:, None, :] - centres[None, :, :]                # (C, C, D): c_i - c_j
    k = torch.exp(-diff.pow(2).sum(-1) / D)                         # (C, C), diagonal 1 but diff 0 there
    return -(2.0 / D) * (k[..., None] * diff).sum(1)

