"""Training on several processes: ``torchrun --nproc_per_node N -m pcnacycle train ...``.

torchrun starts N copies of the command and tells each its place through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). Each process then trains the same model wrapped in
:class:`torch.nn.parallel.DistributedDataParallel` (gloo on CPU, nccl on CUDA,
one GPU per process), which averages the gradients, so every process holds the
same parameters after every step.

``SOLVER.IMS_PER_BATCH`` stays the global batch, as in detectron2: process
``r`` of ``N`` takes images ``r*B/N .. (r+1)*B/N - 1`` of each global batch
that a single process would have drawn. Which images a batch holds follows
from the iteration alone, so a resumed run continues exactly, whatever the
process count. Only process 0 writes files (checkpoints, metrics, plots, logs).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..errors import PcnacycleError
from ..io import quieter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes the files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process, hence a process group."""
        return self.world_size > 1


def from_environment() -> Processes:
    """The place torchrun gave this process; one process when started without it."""
    values = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        text = os.environ.get(name, str(default))
        try:
            values[name] = int(text)
        except ValueError:
            raise PcnacycleError(f"environment variable {name}={text!r}: not an integer (set by torchrun)") from None
    if not 0 <= values["RANK"] < values["WORLD_SIZE"]:
        raise PcnacycleError(f"RANK={values['RANK']} is not below WORLD_SIZE={values['WORLD_SIZE']} (set by torchrun)")
    return Processes(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def warnings_only() -> contextlib.AbstractContextManager[None]:
    """Keep the package's INFO lines to process 0 while the block runs: the others would repeat them."""
    return quieter("pcnacycle", logging.WARNING)


def images_per_process(global_batch: int, processes: Processes) -> int:
    """``SOLVER.IMS_PER_BATCH`` (the global batch) split over the processes; refused when it does not divide."""
    if global_batch % processes.world_size:
        raise PcnacycleError(f"SOLVER.IMS_PER_BATCH {global_batch} is the global batch and must be divisible by the "
                             f"{processes.world_size} training processes; choose a multiple of "
                             f"{processes.world_size}")
    return global_batch // processes.world_size


def start(processes: Processes, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); return this process's device.

    On CUDA each process takes GPU ``LOCAL_RANK``.
    """
    if not processes.active:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", processes.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, rank=processes.rank, world_size=processes.world_size,
                                         **({"device_id": device} if device.type == "cuda" else {}))
    return device


def stop(processes: Processes) -> None:
    """Leave the process group, if this process joined one."""
    if processes.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def wrap(model: torch.nn.Module, processes: Processes, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (which first copies process 0's parameters to the others)."""
    if not processes.active:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def barrier(processes: Processes) -> None:
    """Wait until every process gets here (e.g. while process 0 evaluates)."""
    if processes.active:
        torch.distributed.barrier()


def mean_over_processes(values: dict[str, torch.Tensor], processes: Processes) -> dict[str, float]:
    """The mean of each scalar tensor over the processes (every process gets the same numbers)."""
    names = list(values)
    stacked = torch.stack([values[name].detach().float() for name in names])
    if processes.active:
        torch.distributed.all_reduce(stacked)
        stacked /= processes.world_size
    return dict(zip(names, stacked.tolist()))


def random_states(processes: Processes) -> list[dict]:
    """Every process's torch (and CUDA) random state, in rank order; every process must call it."""
    own = {"torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    if not processes.active:
        return [own]
    gathered: list = [None] * processes.world_size
    torch.distributed.all_gather_object(gathered, own)
    return gathered


class ShardSampler(torch.utils.data.Sampler):
    """This process's share of each global batch drawn from ``sampler``.

    Parameters
    ----------
    sampler : the stream a single process would batch (e.g. :class:`pcnacycle.data.TrainingSampler`).
    global_batch : ``SOLVER.IMS_PER_BATCH``.
    processes : :class:`Processes`; process ``r`` keeps positions
        ``r*b .. (r+1)*b - 1`` of every ``global_batch`` draws, ``b`` the images per process.
    """

    def __init__(self, sampler, global_batch: int, processes: Processes):
        self.sampler, self.global_batch, self.processes = sampler, global_batch, processes
        self.per_process = images_per_process(global_batch, processes)

    def __iter__(self) -> Iterator:
        draws = iter(self.sampler)
        first = self.processes.rank * self.per_process
        while True:
            batch = [next(draws) for _ in range(self.global_batch)]
            yield from batch[first:first + self.per_process]
