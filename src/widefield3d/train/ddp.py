"""Data-parallel training on several processes (torch ``DistributedDataParallel``), as started by ``torchrun``.

``torchrun --nproc-per-node N -m widefield3d train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment. The trainer calls
:func:`setup`, which joins that process group once (NCCL when the run's device is CUDA, gloo on CPU; left open
until the process exits) and gives each rank its device (``cuda:LOCAL_RANK`` on CUDA). A process group that the
caller initialised itself is used as it is. Without one, and without ``WORLD_SIZE > 1``, nothing here does
anything and training is the plain single-process loop. See ``docs/training.md`` ("Several GPUs: torch DDP").
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from widefield3d.errors import InputError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""What ``torchrun`` (or any ``env://`` launcher) puts in every rank's environment (``LOCAL_RANK`` too)."""


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset): the number of ranks a launcher started."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise InputError(f"WORLD_SIZE={value!r} is not a number of processes") from None


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup(device: torch.device) -> torch.device:
    """Join the launcher's process group (once) when ``WORLD_SIZE > 1`` and return this rank's device.

    Parameters
    ----------
    device : torch.device
        The run's resolved device (``--device``). On CUDA each rank uses ``cuda:LOCAL_RANK`` whatever index was
        given; on CPU it is returned as it is.

    Returns
    -------
    torch.device
        ``device`` itself in a single process.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if not initialised and env_world_size() <= 1:
        return device
    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed; train in one process")
    if device.type == "cuda":
        local = os.environ.get("LOCAL_RANK")
        index = int(local) if local is not None else dist.get_rank() % torch.cuda.device_count()
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    if not initialised:
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise InputError(f"WORLD_SIZE={env_world_size()} but {', '.join(missing)} not set; start the ranks "
                             "with torchrun --nproc-per-node N")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
        atexit.register(_shutdown)
    return device


def _shutdown() -> None:
    """Leave the process group at exit (only the one :func:`setup` joined). On gloo the ranks first meet at a
    barrier with a timeout: a rank that tears its connections down while another still holds them can abort the
    other ("terminate called without an active exception"); a rank that died already only delays the exit."""
    if not dist.is_initialized():
        return
    if backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=30))
        except RuntimeError:
            pass  # a rank is gone: nothing to wait for
    dist.destroy_process_group()


def backend() -> str:
    """The process group's backend (``"gloo"``, ``"nccl"``)."""
    return str(dist.get_backend())


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in ``DistributedDataParallel``: its gradients are averaged over the ranks during ``backward``.

    The wrapper shares the module's parameters (the optimisers and the checkpoint keep using the module) and, when
    made, copies rank 0's parameters and buffers to every rank.
    """
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, output_device=device if ids else None)


def any_rank(device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag raised on all ranks when it is raised on any (one all-reduce). Call it on every rank at the same
    point of the loop; a rank that alone decides (the time budget: rank 0's clock) passes False elsewhere."""
    values = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in values.tolist())


def from_rank0(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object; also a barrier)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
