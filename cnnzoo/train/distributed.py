"""Data-parallel training with torch.distributed, started by `torchrun`.

`torchrun --nproc_per_node N -m cnnzoo train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; each
process trains a DistributedDataParallel replica on its shard of every batch (gloo on CPU,
nccl on CUDA). --batch-size stays the global batch: each rank takes batch_size / N, and DDP
averages the gradients, so the step equals one single-process step on the whole batch.
Only rank 0 writes the run folder; epoch metrics are summed across ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> Dist:
    """Join the process group when launched by torchrun; a no-op for a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(d.local_rank)
        dist.init_process_group(backend=backend)
    return d


def device_for(d: Dist, device: torch.device) -> torch.device:
    """Each rank on its own GPU; CPU ranks share the CPU."""
    if device.type == "cuda" and d.enabled:
        return torch.device("cuda", d.local_rank)
    return device


def wrap(model: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def all_reduce_sum(d: Dist, values: list[float], device: torch.device) -> list[float]:
    """Sum of each value over all ranks (float64: counts and sums stay exact)."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def any_rank(d: Dist, flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag true on any rank (so every rank stops at the same step)."""
    if not d.enabled:
        return flags
    return [v > 0 for v in all_reduce_sum(d, [float(f) for f in flags], device)]


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
