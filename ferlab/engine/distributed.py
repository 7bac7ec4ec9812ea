"""torchrun environment handling (RANK / WORLD_SIZE / LOCAL_RANK; no --local_rank)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


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


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BN running statistics, banks) to every rank, so that a
    distributed evaluation uses exactly the state rank 0 checkpoints."""
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, 0)
