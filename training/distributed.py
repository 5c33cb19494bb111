"""Training on several processes with torchrun: `torchrun --nproc-per-node N -m training.train ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `setup()` then joins the process group (NCCL on
GPUs, gloo on CPUs) and `fit` wraps the model in DistributedDataParallel. Each rank trains on its
own shard of every epoch (`DistributedSampler`, reseeded per epoch), so N ranks with batches of
B/N make the same global batches of B as one process would; rank 0 alone validates, logs, shows
progress and saves. Started without torchrun, nothing here does anything: one process, as before.
"""
from __future__ import annotations

import contextlib
import logging
import os
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: str | None) -> str | None:
    """Join torchrun's process group if launched by it; the device this rank should use.

    `device` None or "cuda" on a GPU machine gives each rank its own GPU (`cuda:LOCAL_RANK`) and
    NCCL; "cpu" (or no GPU) gives gloo. Other ranks' log lines are reduced to warnings.
    """
    if not launched() or active():
        return device
    local = int(os.environ["LOCAL_RANK"])
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=60))
    if rank() != 0:
        logging.getLogger().setLevel(logging.WARNING)
    log.info("torchrun: %d processes (%s), this is rank %d", world(), "NCCL" if use_cuda else "gloo", rank())
    return device


def teardown() -> None:
    if active():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (builds the region-feature cache), the others after it, reading it."""
    if is_main():
        yield
        barrier()
    else:
        barrier()
        yield


def agree(flag: bool) -> bool:
    """Rank 0's decision, on every rank (to stop early together: every rank must take the same steps)."""
    if not active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.broadcast(value, src=0)
    return bool(value.item())


def mean(value: float) -> float:
    """The mean of a number over the ranks (the loss logged is the global batch's, not rank 0's part)."""
    if not active():
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.item() / world()


def shard_batches(n: int, batch_size: int, epoch: int, seed: int) -> list[list[int]]:
    """This rank's batches of one epoch: `DistributedSampler` over the n rows, reseeded by epoch,
    cut into batches of batch_size / world. Every rank gets the same number of batches (the sampler
    pads with repeats), and batch k of all ranks together is the global batch k."""
    from torch.utils.data import DistributedSampler

    if batch_size % world():
        raise SystemExit(f"error: --batch-size {batch_size} is the global batch and must be a multiple of the "
                         f"{world()} processes (e.g. {batch_size - batch_size % world() or world()}).")
    sampler = DistributedSampler(range(n), num_replicas=world(), rank=rank(), shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    order = list(sampler)
    per_rank = batch_size // world()
    return [order[i:i + per_rank] for i in range(0, len(order), per_rank)]
