"""The processes of one run launched by ``torchrun``: which one this is, and how many there are.

    from biomeseason.io import distributed
    ddp = distributed.setup("cpu")        # joins the group torchrun describes; Dist() alone
    try:
        mine = items[distributed.share(len(items), ddp)]
        ...
    finally:
        distributed.teardown(ddp)

Training (DistributedDataParallel) and prediction (each process its share of the images, one
output) join the same way: gloo on CPU, nccl when the process has a GPU. Without torchrun
(no ``WORLD_SIZE`` above 1) nothing is started and ``Dist()`` is one process of one.
torch is imported only when a group is joined, so the jobs that never use one do not pay for it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1      # processes on this machine (torchrun's LOCAL_WORLD_SIZE)

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_name: str = "auto") -> Dist:
    """Join the process group that ``torchrun`` describes; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def teardown(ddp: Dist) -> None:
    """Leave the group ``setup`` joined (nothing for a single process)."""
    if ddp.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(ddp: Dist) -> None:
    """Wait until every process of the run is here (nothing for a single process)."""
    if ddp.world > 1:
        import torch.distributed as dist

        dist.barrier()


def gather(ddp: Dist, value) -> list:
    """``value`` of every process, in rank order, in every process (picklable values)."""
    if ddp.world <= 1:
        return [value]
    import torch.distributed as dist

    values = [None] * ddp.world
    dist.all_gather_object(values, value)
    return values


def share(n: int, ddp: Dist, weights=None) -> slice:
    """This process's part of ``n`` items: a contiguous slice, so that the parts in rank order are
    all the items in their order (one output, as one process would write it). The cuts give every
    process about the same total of ``weights`` (default 1 each; e.g. 0 for an item already done)."""
    if ddp.world <= 1:
        return slice(0, n)
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if n == 0 or weights.sum() <= 0:
        weights = np.ones(n)
    total = np.cumsum(weights)                                   # (n,)
    targets = total[-1] * np.arange(1, ddp.world) / ddp.world if n else np.zeros(ddp.world - 1)
    cuts = np.minimum([0, *(np.searchsorted(total, targets, side="left") + 1).tolist(), n], n)
    return slice(int(cuts[ddp.rank]), int(cuts[ddp.rank + 1]))
