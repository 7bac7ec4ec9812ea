"""EAC's flip attention consistency (Zhang et al., ECCV 2022).

The class activation map of a sample must equal the horizontally re-flipped map of
its flipped view. CAMs are computed from the *detached* classifier weight, so this
loss trains only the feature extractor, never the classifier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def class_activation_maps(features: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """CAMs of every class: ``A[n, k, h, w] = sum_c W[k, c] * F[n, c, h, w]``.

    Args:
        features: (N, C, H, W) last feature map of the backbone.
        fc_weight: (K, C) classifier weight. It is detached here (no bias, no ReLU,
            no normalisation -- as in the official code).
    Returns:
        (N, K, H, W) maps in the dtype of ``features``.
    """
    if features.ndim != 4 or fc_weight.ndim != 2 or features.shape[1] != fc_weight.shape[1]:
        raise ValueError(f"features (N, C, H, W) and fc_weight (K, C) must share C; got {tuple(features.shape)} "
                         f"and {tuple(fc_weight.shape)}")
    return torch.einsum("kc,nchw->nkhw", fc_weight.detach().to(features.dtype), features)


def flip_attention_consistency(maps: torch.Tensor, maps_of_flipped: torch.Tensor) -> torch.Tensor:
    """Scalar MSE between ``maps`` (N, K, H, W) and the horizontally re-flipped maps of
    the flipped view (same shape), averaged over all N*K*H*W elements. Gradients flow
    into both inputs (no stop-gradient, as in the official code)."""
    if maps.shape != maps_of_flipped.shape:
        raise ValueError(f"attention maps differ in shape: {tuple(maps.shape)} vs {tuple(maps_of_flipped.shape)}")
    return F.mse_loss(maps.float(), maps_of_flipped.flip(-1).float())
