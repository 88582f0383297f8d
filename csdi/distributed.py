"""Data-parallel training under `torchrun` (PyTorch DDP): the process group and who does what.

`torchrun --nproc_per_node N -m csdi.cli train …` starts N processes with RANK, LOCAL_RANK and
WORLD_SIZE in their environment; `from_environment` joins them into one process group (`nccl`
on GPUs, `gloo` on CPUs) and gives each its device (`cuda:LOCAL_RANK`, or the CPU). Without
those variables (a plain `csdi train`) it returns the single-process context and nothing changes.

In a group the trainer (`csdi.training.Trainer`) wraps the network in
`DistributedDataParallel`, splits one shared shuffle of the windows across ranks (equal step
counts), draws masks and noise from a per-rank stream, averages the reported losses across
ranks, and lets rank 0 alone decide time-limit stops; rank 0 alone writes checkpoints,
snapshots, MLflow runs and progress bars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in the group: rank, number of processes, rank on this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over ranks (itself when single-process); no gradient."""
        if not self.enabled:
            return value.detach()
        out = value.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The average of `value` over ranks (itself when single-process); no gradient."""
        return self.total(value) / self.world_size

    def from_main(self, value: float, device: torch.device) -> float:
        """Rank 0's `value` on every rank (its wall clock: the same stops and learning rates)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients of parameters outside the DDP module (a learned schedule)."""
        if not self.enabled:
            return
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.world_size

    def shard(self, n: int) -> np.ndarray:
        """This rank's contiguous block of range(n) (blocks differ by at most one item)."""
        return np.array_split(np.arange(n), self.world_size)[self.rank]

    def all_gather(self, part: object) -> list[object]:
        """Every rank's `part`, in rank order, on every rank."""
        if not self.enabled:
            return [part]
        parts: list[object] = [None] * self.world_size
        dist.all_gather_object(parts, part)
        return parts

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE = Distributed()


def from_environment(device: str = "auto") -> tuple[Distributed, torch.device | None]:
    """Join the torchrun group if this process was started by torchrun; (context, device).

    device "auto"/"cuda" with a GPU: `cuda:LOCAL_RANK` and the nccl backend; else the CPU and
    gloo. Returns (SINGLE, None) outside torchrun (the caller keeps its own device choice).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE, None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not use_cuda:
        raise RuntimeError("train.device is cuda but this machine has no CUDA GPU")
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return (
        Distributed(rank=rank, world_size=world, local_rank=local),
        torch.device("cuda", local) if use_cuda else torch.device("cpu"),
    )


def shutdown(ctx: Distributed) -> None:
    """Leave the process group (after a barrier, so rank 0's last writes are done)."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
