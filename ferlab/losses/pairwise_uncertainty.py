"""DMUE's losses (She et al., CVPR 2021): latent label distributions mined by auxiliary branches
and a pairwise-similarity confidence that scales the target logits.

Shapes: B batch, C classes, D feature width. Auxiliary branch ``c`` never sees class ``c`` and
classifies over the other C - 1 classes, in order (``exclude_class`` maps labels into that space).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def exclude_class(labels: torch.Tensor, c: int) -> torch.Tensor:
    """Labels (n,) != c -> their index among the C - 1 classes other than ``c``."""
    return labels - (labels > c).long()


def latent_distribution_target(aux_logits: torch.Tensor, c: int, num_classes: int,
                               temperature: float = 1.2) -> torch.Tensor:
    """The latent label distribution of samples labelled ``c``.

    ``aux_logits`` (n, C-1): branch ``c``'s logits for them. Returns (n, C), detached:
    softmax sharpened as q^(1/T) / sum, placed on the classes other than ``c``; exactly 0 at ``c``.
    """
    q = torch.softmax(aux_logits.detach().float(), dim=1)
    q = q.pow(1.0 / temperature)
    q = q / q.sum(1, keepdim=True)
    out = q.new_zeros(len(q), num_classes)
    others = [k for k in range(num_classes) if k != c]
    out[:, others] = q
    return out


def soft_label_loss(logits: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over B*C of (p - target)^2, with p = softmax(logits) whose labelled entry is set to 0
    and *not* renormalised (as released). ``logits`` (B, C) are the unscaled target logits."""
    p = torch.softmax(logits.float(), dim=1)
    p = p * (1 - F.one_hot(labels, p.shape[1]).to(p.dtype))
    return F.mse_loss(p, target.to(p.dtype))


def similarity_gram(x: torch.Tensor) -> torch.Tensor:
    """(n, d) -> (n, n): the Gram matrix x x^T with every row L2-normalised."""
    x = x.float()
    return F.normalize(x @ x.t(), dim=1)


def similarity_preserving_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MSE between the row-normalised Gram matrices of (n, d1) ``a`` and (n, d2) ``b``
    (gradients reach both sides)."""
    return F.mse_loss(similarity_gram(a), similarity_gram(b))


def class_similarity_profile(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                             ref_features: torch.Tensor | None = None,
                             ref_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Per sample, the mean cosine similarity to the reference samples of every class,
    min-max normalised across classes (B, C) in [0, 1].

    The reference defaults to the batch itself (diagonal included, as released). A class with no
    reference sample gets the row minimum (0 after normalisation). The released code has no
    epsilon in ``max - min``; ferlab clamps it at 1e-12 so a degenerate row gives 0, not NaN.
    """
    if ref_features is None:
        ref_features, ref_labels = features, labels
    s = F.normalize(features.float(), dim=1) @ F.normalize(ref_features.float(), dim=1).t()      # (B, R)
    onehot = F.one_hot(ref_labels, num_classes).to(s.dtype)                                     # (R, C)
    count = onehot.sum(0)
    m = (s @ onehot) / count.clamp_min(1)
    present = count > 0
    if not bool(present.all()):
        m = torch.where(present, m, m.masked_fill(~present, float("inf")).min(1, keepdim=True).values)
    lo, hi = m.min(1, keepdim=True).values, m.max(1, keepdim=True).values
    return (m - lo) / (hi - lo).clamp_min(1e-12)


class PairwiseConfidence(nn.Module):
    """DMUE's uncertainty MLP ``project_w``: [profile (C), onehot(label) (C)] -> Linear(2C, C) ->
    PReLU -> Linear(C, 1) -> sigmoid: a per-sample confidence in (0, 1)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.mlp = nn.Sequential(nn.Linear(2 * num_classes, num_classes), nn.PReLU(), nn.Linear(num_classes, 1))

    def forward(self, features: torch.Tensor, labels: torch.Tensor, ref_features: torch.Tensor | None = None,
                ref_labels: torch.Tensor | None = None) -> torch.Tensor:
        """features (B, D) pre-dropout pooled features, labels (B,) -> confidence (B,)."""
        profile = class_similarity_profile(features, labels, self.num_classes, ref_features, ref_labels)
        z = torch.cat([profile, F.one_hot(labels, self.num_classes).to(profile.dtype)], dim=1)
        return torch.sigmoid(self.mlp(z.to(self.mlp[0].weight.dtype)).float()).squeeze(1)
