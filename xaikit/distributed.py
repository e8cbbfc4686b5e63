"""Processes started by ``torchrun``: who is who, which device, the process group, collectives.

``torchrun --nproc-per-node N -m xaikit CMD ...`` (``python -m torch.distributed.run``) starts
``N`` processes per machine and tells each, in environment variables, the world size
(``WORLD_SIZE``), its global rank (``RANK``), its rank on this machine (``LOCAL_RANK``) and
where the rendezvous store is (``MASTER_ADDR``, ``MASTER_PORT``). :func:`process_group` joins
the processes from those variables: Gloo carries CPU tensors and the object collectives, NCCL
CUDA tensors (``"cpu:gloo,cuda:nccl"`` where CUDA exists, ``"gloo"`` otherwise).

Every helper also works in a plain process (no torchrun, no process group): world size 1,
rank 0, :func:`is_main` true, collectives hand back their input. Library code therefore
calls them unconditionally and a single-process run takes exactly its old path.

Errors: a collective waits for every process, so a process that gives up alone leaves the
others waiting. Code that can fail on some processes only (rank 0's checks of the run folder,
a data file missing on one machine) runs inside :func:`agree_on_errors`, after which either
every process goes on or every process raises.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import socket
from typing import Any, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from xaikit import errors
from xaikit.device import resolve_device
from xaikit.errors import XaikitError

T = TypeVar("T")

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""The variables torchrun sets for every process it starts (and :func:`launched` checks)."""


def launched() -> bool:
    """Whether this process was started by torchrun (its rendezvous variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """Whether a default process group is initialised (under torchrun, after :func:`process_group`)."""
    return dist.is_available() and dist.is_initialized()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


def world_size() -> int:
    """Number of processes of the job (1 in a plain process)."""
    if is_distributed():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1) if launched() else 1


def rank() -> int:
    """This process's global rank, ``0 .. world_size() - 1`` (0 in a plain process)."""
    if is_distributed():
        return dist.get_rank()
    return _env_int("RANK", 0) if launched() else 0


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 in a plain process)."""
    return _env_int("LOCAL_RANK", 0) if launched() else 0


def is_main() -> bool:
    """Whether this is rank 0: the one process that writes files and prints."""
    return rank() == 0


def rank_device(name: str | torch.device = "auto") -> torch.device:
    """The device this process computes on.

    ``name`` is resolved as :func:`xaikit.device.resolve_device` does; under torchrun a CUDA
    device becomes ``cuda:LOCAL_RANK`` (one GPU per process, whatever index ``name`` had) and
    is made the current CUDA device, as NCCL requires.

    Raises:
        XaikitError: an unknown device, CUDA missing, or more processes on this machine than
            it has GPUs.
    """
    if not launched():
        return resolve_device(name)
    device = resolve_device(torch.device(name).type if isinstance(name, torch.device) else
                            str(name).split(":")[0])
    if device.type == "cuda":
        index, count = local_rank(), torch.cuda.device_count()
        if index >= count:
            raise XaikitError(
                f"process {rank()} (LOCAL_RANK {index}) has no GPU: this machine shows {count}; "
                f"start at most {count} processes here (--nproc-per-node {count})"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    return device


def backend() -> str:
    """The process-group backend: Gloo for CPU tensors, NCCL for CUDA tensors where CUDA exists."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


@contextlib.contextmanager
def process_group(timeout_s: float = 1800.0) -> Iterator[bool]:
    """Join the torchrun job for the block (if started by torchrun); yield whether distributed.

    In a plain process, or when a process group already exists (a user's script initialised
    one), nothing is created or destroyed. Otherwise the default group is initialised from
    torchrun's variables (``env://``) and destroyed when the block ends.

    Raises:
        XaikitError: the rendezvous failed (one line naming the address).
    """
    if not launched() or is_distributed():
        yield is_distributed()
        return
    try:
        dist.init_process_group(backend=backend(), timeout=_dt.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise XaikitError(f"process {rank()} cannot join the process group at {where}: {first}") from None
    try:
        yield True
        # Leave together: a process that tears down its Gloo group while another one still
        # works (rank 0 drawing the report's figures after the others are done) can end in
        # "terminate called without an active exception" (SIGABRT) in the early leaver.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process got here (no-op in a plain process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes, in place, and return it (unchanged in a plain process)."""
    if is_distributed() and world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``tensor`` over all processes, in place (e.g. a failure flag)."""
    if is_distributed() and world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every process with rank ``src``'s, in place, and return it."""
    if is_distributed() and world_size() > 1:
        dist.broadcast(tensor, src=src)
    return tensor


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` (any picklable object) on every process."""
    if not (is_distributed() and world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` in a plain process)."""
    if not (is_distributed() and world_size() > 1):
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Give every process rank ``src``'s buffers of ``module`` (e.g. BatchNorm running stats)."""
    if is_distributed() and world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=src)


def shard_bounds(n: int, shard: int | None = None, shards: int | None = None) -> tuple[int, int]:
    """``(start, stop)`` of shard ``shard`` (default: this rank) of ``range(n)`` cut into
    ``shards`` (default: the world size) contiguous parts, as ``torch.tensor_split`` cuts:
    the first ``n % shards`` parts hold one item more."""
    shard = rank() if shard is None else shard
    shards = world_size() if shards is None else shards
    base, extra = divmod(n, shards)
    start = shard * base + min(shard, extra)
    return start, start + base + (1 if shard < extra else 0)


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed derived from ``parts`` (e.g. ``seed, epoch, rank``), the same on every
    machine and Python (SHA-256 of their text, not ``hash()``)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def hosts() -> list[str]:
    """The host name of every process, in rank order."""
    return all_gather_object(socket.gethostname())


def _error_class(name: str) -> type[XaikitError]:
    found = getattr(errors, name, None)
    return found if isinstance(found, type) and issubclass(found, XaikitError) else XaikitError


@contextlib.contextmanager
def agree_on_errors() -> Iterator[None]:
    """Run the block on every process; if it raised a ``XaikitError`` on any, raise on all.

    After the block every process tells the others whether it failed (one object
    all-gather). Each process that failed raises its own error; the others raise the error of
    the first process that failed, as ``process N of W (host): message``. So rank 0, the one
    that prints, shows its own error, or else the first one found elsewhere. In a plain
    process the block runs as it is.
    """
    if not (is_distributed() and world_size() > 1):
        yield
        return
    own: XaikitError | None = None
    try:
        yield
    except XaikitError as exc:
        own = exc
    report = None if own is None else (type(own).__name__, str(own), socket.gethostname())
    reports = all_gather_object(report)
    if own is not None:
        raise own
    for index, found in enumerate(reports):
        if found is not None:
            name, message, host = found
            raise _error_class(name)(f"process {index} of {len(reports)} ({host}): {message}")
