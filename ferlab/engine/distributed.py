"""torchrun environment handling (RANK / WORLD_SIZE / LOCAL_RANK; no --local_rank): process-group
setup and teardown, and the engine's object gathers and broadcasts. The tensor collectives methods
use in their training steps live in the bottom-level :mod:`ferlab.collectives` (re-exported here)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..collectives import gather_cat, gather_cat_with_grad, in_distributed_run, sum_over_ranks  # noqa: F401


@dataclass
class DistInfo:
    """Where this process stands in a torchrun job (defaults: a single process).

    Attributes:
        rank: Global rank, 0 to ``world_size - 1``.
        world_size: Number of processes of the job.
        local_rank: Rank on this host (the CUDA device index under torchrun).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process: the collectives are real."""
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


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every rank's picklable ``obj``, in rank order (``[obj]`` outside torchrun); every rank must call it."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait until every rank reaches this call (no-op outside torchrun)."""
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Destroy the process group of a torchrun job, if one is initialised."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BN running statistics, banks) to every rank, so that a
    distributed evaluation uses exactly the state rank 0 checkpoints."""
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, 0)
