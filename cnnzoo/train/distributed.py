"""Data-parallel training with torch.distributed, started by `torchrun`.

`torchrun --nproc_per_node N -m cnnzoo train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; each
process trains a DistributedDataParallel replica on its shard of every batch (gloo on CPU,
nccl on CUDA). --batch-size stays the global batch: each rank takes batch_size / N, and DDP
averages the gradients, so the step equals one single-process step on the whole batch.
Only rank 0 writes the run folder; epoch metrics are summed across ranks. On several machines
(`torchrun --nnodes N --rdzv-backend c10d ...`) a rank sees only its own disk: what rank 0
reads from the run folder (the best weights) it sends to the others.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnzoo.errors import CnnzooError


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


def sync_batchnorm(model: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    """BatchNorm -> SyncBatchNorm under DDP: batch statistics over the global batch, not each
    rank's share. The parameters and buffers stay the same tensors under the same names, so
    the optimizer's groups stay valid and the run folder loads into the plain model."""
    if not d.enabled:
        print("warning: --sync-bn: a single process already normalises over the whole "
              "batch; nothing to convert (it matters under torchrun)", file=sys.stderr,
              flush=True)
        return model
    if device.type != "cuda":  # torch's SyncBatchNorm rejects CPU input; its kernels are CUDA's
        raise CnnzooError(f"--sync-bn: torch's SyncBatchNorm runs on CUDA only (torch "
                          f"{torch.__version__} has no CPU kernel for it); drop --sync-bn on "
                          f"{device.type} (BatchNorm statistics then stay per rank)")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


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
    _all_reduce(t)
    return t.tolist()


_RELEASE_TIMEOUT = 1.0  # seconds; after one timeout the wait is skipped (see below)


def _all_reduce(t: torch.Tensor) -> None:
    """dist.all_reduce, returning once the backend's worker thread has let go of `t`.

    gloo completes a collective on a worker thread, which drops its reference to the tensor
    a moment after the caller wakes up. In recent torch (2.13 here) a tensor's C++ references
    hold its Python object, so that drop takes the GIL; when it comes after the interpreter began
    shutting down (a rank that fails right after agreeing on the error exits within
    milliseconds), the thread dies inside a destructor and the process aborts (SIGABRT,
    "terminate called without an active exception"). The reference shows in the refcount:
    wait for it, giving the GIL away (usually microseconds).
    """
    global _RELEASE_TIMEOUT
    base = sys.getrefcount(t)  # measured in this frame, as below
    dist.all_reduce(t)
    deadline = time.monotonic() + _RELEASE_TIMEOUT
    while sys.getrefcount(t) > base:
        if time.monotonic() > deadline:  # held elsewhere (another torch): stop waiting
            _RELEASE_TIMEOUT = 0.0
            return
        time.sleep(1e-4)


def each_rank(d: Dist, value: float, device: torch.device) -> list[float]:
    """Every rank's `value`, in rank order, on every rank."""
    if not d.enabled:
        return [value]
    return all_reduce_sum(d, [value if i == d.rank else 0.0 for i in range(d.world_size)],
                          device)


def broadcast_module(d: Dist, module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers onto every rank, in place (the others may not see
    the files rank 0 reads: on another machine, its disk holds no run folder)."""
    if d.enabled:
        for t in module.state_dict().values():  # views of the module's own tensors
            dist.broadcast(t, src=0)


def any_rank(d: Dist, flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag true on any rank (so every rank stops at the same step)."""
    if not d.enabled:
        return flags
    return [v > 0 for v in all_reduce_sum(d, [float(f) for f in flags], device)]


def agree(d: Dist, device: torch.device, fn, *args):
    """fn(*args) on every rank; when it fails on any rank, every rank raises (its own
    error, or one saying which rank failed) instead of the others waiting forever at the
    next collective."""
    error = None
    try:
        result = fn(*args)
    except Exception as e:  # noqa: BLE001 (re-raised below, on every rank)
        error = e
    if not d.enabled:
        if error is not None:
            raise error
        return result
    failed = each_rank(d, float(error is not None), device)
    if error is not None:
        raise error
    if any(failed):
        first = next(i for i, f in enumerate(failed) if f)
        raise CnnzooError(f"rank {first} failed (see its error); this rank stops too")
    return result


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
