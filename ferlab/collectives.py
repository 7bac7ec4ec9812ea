"""Collectives a training step uses under DDP, and that are identities in a single process.

The bottom layer of ferlab (imports only torch): methods synchronise per-sample state with them
without importing the engine. Process-group setup and teardown (torchrun's environment) live in
:mod:`ferlab.engine.distributed`, which re-exports these names.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def in_distributed_run() -> bool:
    """True inside a multi-process group (what a method sees in its training step)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_cat(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Every rank's ``t`` concatenated along ``dim`` in rank order (``t`` itself outside DDP);
    for per-sample updates (index rows) that every rank must apply identically."""
    if not in_distributed_run():
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim)


def gather_cat_with_grad(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's ``t`` (same shape on all ranks) concatenated along dim 0, with this rank's own
    slice being ``t`` itself so that its gradient flows (the other slices are constants: LA-Net's
    gather, whose gradients for this rank's features from other ranks are dropped). Returns the
    tensor and the offset of this rank's slice."""
    if not in_distributed_run():
        return t, 0
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    rank = dist.get_rank()
    parts[rank] = t
    return torch.cat(parts, 0), rank * len(t)


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over ranks (a copy; ``t`` itself outside DDP)."""
    if not in_distributed_run():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t
