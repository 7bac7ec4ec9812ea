"""LA-Net's losses (Wu & Cui, ICCV 2023): landmark heatmaps with the weighted Adaptive Wing loss,
label distribution estimation (LDE) from neighbours in the expression and landmark feature spaces,
and the expression-landmark (EL) contrastive loss with queues of momentum-encoder keys.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# -- landmark heatmaps -------------------------------------------------------------------------------
@functools.cache
def _gaussian_by_squared_distance(sigma: float, half: int) -> torch.Tensor:
    """float32 exp(-d2 / (2 sigma^2)) for integer d2 = 0 .. 2 half^2, computed as the official patch
    is: a float32 ``d2``, float32 division, numpy's float32 exp (CPU tensor; do not modify)."""
    d2 = np.arange(2 * half ** 2 + 1, dtype=np.float32)
    return torch.from_numpy(np.exp(-d2 / np.float32(2 * float(sigma) ** 2)))


def heatmap_targets(points: torch.Tensor, size: int, stride: float, sigma: float = 1.5, window: int = 10,
                    weight: float = 10.0, threshold: float = 0.2,
                    rounding: str = "official") -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian heatmap targets and AWing weight maps.

    ``points`` (B, K, 2) pixel (x, y) of the input image -> heatmaps (B, K, size, size) float32 and
    weights (B, K, size, size). A ``window`` x ``window`` patch of the unnormalised Gaussian is pasted
    into a box: patch index (i, j) holds exp(-((i - h)^2 + (j - h)^2) / (2 ``sigma``^2)) with
    h = ``window // 2`` (peak 1), evaluated in float32 with numpy's exp, so the values equal the
    official patch's bit for bit. Pixels off the map are dropped, so a landmark whose box falls off
    the map gives an all-zero heatmap. Weights are ``weight`` where the 3x3-dilated heatmap exceeds
    ``threshold``, 1 elsewhere.

    ``rounding``, per axis:

    * ``official`` (LA-Net's generator): centre ``c = int(p / stride + 0.5)`` (float32), box
      ``[ul, br)`` with ``ul = int(c - (window - 1) / 2)`` and ``br = int(c + (window + 1) / 2)``,
      every ``int`` truncating toward zero; box pixel ``ul + i`` takes patch index ``i``, so the peak
      is at ``ul + window // 2``. With window 10: for ``c >= 5`` the box is ``[c - 5, c + 5)``,
      10 pixels wide with the peak at ``c``; for ``c <= 4`` (``c - 4.5`` truncates up) it is
      ``[c - 4, c + 5)``, 9 pixels wide with the peak at ``c + 1``, and the patch's last
      column/row (offset +4 from the peak) is not written. x and y follow this independently.
    * ``exact``: centre ``floor(p / stride + 0.5)``, the peak exactly there, box offsets
      ``-(window // 2) .. window - window // 2 - 1`` from it (always ``window`` pixels wide).
    """
    half = window // 2
    if rounding == "official":
        centre = torch.trunc(points.float() / stride + 0.5)                          # (B, K, 2)
        ul = torch.trunc(centre - (window - 1) / 2)
        br = torch.trunc(centre + (window + 1) / 2)
        peak = ul + half
        lo, hi = ul - peak, br - peak                                                # offsets [lo, hi)
    elif rounding == "exact":
        peak = torch.floor(points.float() / stride + 0.5)                            # (B, K, 2)
        lo, hi = torch.full_like(peak, -half), torch.full_like(peak, window - half)
    else:
        raise ValueError(f"rounding must be 'official' or 'exact', got {rounding!r}")
    grid = torch.arange(size, device=points.device, dtype=torch.float32)
    dx = grid.view(1, 1, 1, size) - peak[..., 0, None, None]                         # (B, K, 1, size)
    dy = grid.view(1, 1, size, 1) - peak[..., 1, None, None]                         # (B, K, size, 1)
    inside = (((dx >= lo[..., 0, None, None]) & (dx < hi[..., 0, None, None]))
              & ((dy >= lo[..., 1, None, None]) & (dy < hi[..., 1, None, None])))
    d2 = (dx.clamp(-half, half) ** 2 + dy.clamp(-half, half) ** 2).long()          # exact inside the box
    heat = _gaussian_by_squared_distance(float(sigma), half).to(points.device)[d2] * inside
    dilated = F.max_pool2d(heat.flatten(0, 1)[:, None], 3, 1, 1).view_as(heat)
    weights = torch.where(dilated > threshold, torch.full_like(heat, weight), torch.ones_like(heat))
    return heat, weights


def adaptive_wing_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.1, omega: float = 14.0,
                       epsilon: float = 1.0, theta: float = 0.5) -> torch.Tensor:
    """Elementwise Adaptive Wing loss (Wang et al., ICCV 2019), same shape as ``pred``:
    omega ln(1 + (|d|/eps)^(alpha - y)) for |d| < theta, A|d| - C beyond (continuous at theta)."""
    y = target.float()
    d = (pred.float() - y).abs()
    a_y = alpha - y
    r = (theta / epsilon) ** a_y
    A = omega * (1 / (1 + r)) * a_y * ((theta / epsilon) ** (a_y - 1)) / epsilon
    C = theta * A - omega * torch.log1p(r)
    return torch.where(d < theta, omega * torch.log1p((d / epsilon) ** a_y), A * d - C)


# -- label distribution estimation -------------------------------------------------------------------
@torch.no_grad()
def neighbour_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, D) -> (B, B) bool: the top-``k`` cosine neighbours of each row, never itself."""
    z = F.normalize(x.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-1.0)
    top = sim.topk(min(k, len(x) - 1), dim=1).indices
    return torch.zeros_like(sim, dtype=torch.bool).scatter_(1, top, True)


class PairScore(nn.Module):
    """LA-Net's pairwise "score" network on a feature space of width ``dim``:
    z = Linear(x); pair (i, j) -> [z_i[:dim/2], z_j[dim/2:]] -> dim/2 -> ReLU -> dim/4 -> ReLU -> 2
    -> softmax, output 0 = c_ij in (0, 1). The first MLP layer is split over the two halves so the
    (B, B) pairs cost two (B, dim) products."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 4:
            raise ValueError(f"feature width must be divisible by 4, got {dim}")
        self.dim = dim
        self.proj = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, dim // 2)
        self.fc2 = nn.Linear(dim // 2, dim // 4)
        self.fc3 = nn.Linear(dim // 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim) -> (B, B) c_ij."""
        z = self.proj(x)
        h = self.dim // 2
        w = self.fc1.weight
        left = z[:, :h] @ w[:, :h].T                                  # (B, dim/2): from z_i
        right = z[:, h:] @ w[:, h:].T                                 # from z_j
        a = F.relu(left[:, None, :] + right[None, :, :] + self.fc1.bias)
        out = self.fc3(F.relu(self.fc2(a)))
        return out.float().softmax(-1)[..., 0]


def neighbour_weights(c: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """W_ij = (c_ij M_ij + eps/B) / (sum_j c_ij M_ij + eps): (B, B), rows sum to 1."""
    cm = c * mask
    return (cm + eps / len(c)) / (cm.sum(1, keepdim=True) + eps)


class LabelDistributionEstimator(nn.Module):
    """t = (W^u P + W^v P) / 2 from the K nearest batch neighbours in the expression space u and the
    landmark space v (masks without gradient, weights from :class:`PairScore`). Not detached: the
    KL gradient reaches the score networks and the neighbours' logits (as the official code)."""

    def __init__(self, dim_u: int, dim_v: int, k: int = 8):
        super().__init__()
        self.k = int(k)
        self.score_u, self.score_v = PairScore(dim_u), PairScore(dim_v)

    def forward(self, u: torch.Tensor, v: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """u (B, dim_u), v (B, dim_v), probs (B, C) -> t (B, C)."""
        wu = neighbour_weights(self.score_u(u), neighbour_mask(u, self.k))
        wv = neighbour_weights(self.score_v(v), neighbour_mask(v, self.k))
        p = probs.float()
        return 0.5 * (wu @ p + wv @ p)


# -- expression-landmark contrastive loss ------------------------------------------------------------
def pseudo_labels(target: torch.Tensor, index: torch.Tensor, threshold: float = 0.7,
                  offset: int = 0) -> torch.Tensor:
    """argmax of ``target`` (B, C) where its max reaches ``threshold``, else ``-(index + offset)`` -- a
    label no other sample shares (official ``offset`` 0: sample 0 then collides with class 0)."""
    conf, label = target.detach().max(1)
    return torch.where(conf >= threshold, label, -(index.long() + offset))


def el_contrastive_loss(query: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor, queue_labels: torch.Tensor,
                        labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """L(a, b, Q) of LA-Net's EL loss (all features L2-normalised).

    query (n, D) of one modality, keys (n, D) of the other (the same n samples), queue (Q, D) of
    that other modality's past keys with their pseudo labels ``queue_labels`` (Q,); ``labels`` (n,)
    the batch's pseudo labels. For every pair with equal labels (i, j):
    l_ij = -log(e^{a_i.b_j/T} / (e^{a_i.b_j/T} + sum_{m: label(Q_m) != y_i} e^{a_i.Q_m/T})),
    averaged over i's positives, then over i.
    """
    pos = query @ keys.T / temperature                                         # (n, n)
    neg = query @ queue.T / temperature                                        # (n, Q)
    neg = neg.masked_fill(queue_labels[None, :] == labels[:, None], -1e10)
    neg_lse = torch.logsumexp(neg.float(), 1, keepdim=True)                     # (n, 1)
    loss = -(pos.float() - torch.logaddexp(pos.float(), neg_lse))               # l_ij
    same = (labels[:, None] == labels[None, :]).float()
    return ((loss * same).sum(1) / same.sum(1)).mean()


def init_queue(size: int, dim: int) -> torch.Tensor:
    """(size, dim) random unit rows (MoCo-style initial queue)."""
    return F.normalize(torch.randn(size, dim), dim=1)


def enqueue(queue: torch.Tensor, queue_labels: torch.Tensor, pointer: torch.Tensor, keys: torch.Tensor,
            labels: torch.Tensor) -> None:
    """Write ``keys`` (n, D) / ``labels`` (n,) at ``pointer`` (wrapping), in place; advances pointer."""
    n, size = len(keys), len(queue)
    rows = (int(pointer) + torch.arange(n, device=queue.device)) % size
    queue[rows] = keys.to(queue.dtype)
    queue_labels[rows] = labels.to(queue_labels.dtype)
    pointer.fill_((int(pointer) + n) % size)

