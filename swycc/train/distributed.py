"""torchrun + DDP with a one-process fallback (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the torchrun process group when launched by torchrun, else one process."""
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return DistInfo(device=torch.device(want))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if want.startswith("cuda"):
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def any_true(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank (for skip/stop decisions)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def min_over_ranks(value: int, info: DistInfo) -> int:
    """The smallest of every rank's ``value`` (the same on every rank)."""
    if not info.enabled:
        return value
    t = torch.tensor([float(value)], device=info.device, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def close_after_success() -> None:
    """A command's normal end on every rank: wait for the peers, then close the process group.
    (Left to interpreter exit, a rank tearing gloo down while a peer still talks to it can abort
    with "terminate called without an active exception".) Not for error paths: a barrier there
    would wait for a rank that already failed."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
