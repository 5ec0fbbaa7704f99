"""Multi-process training: one process per device, launched by torchrun, gradients by DDP.

A job is several copies of the same ``flowmatch train`` command started by ``torchrun`` (or
``flowmatch train --nproc N``, which starts torchrun). Each process finds its place in the
environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins the process
group: gloo on CPU, NCCL on CUDA (process ``LOCAL_RANK`` of a node takes ``cuda:LOCAL_RANK``).
A command started without torchrun is a job of one process, and every operation here is then
the identity, so the single-process path has no branch of its own.

What the processes share and how (the semantics a user can rely on):

- ``--batch-size`` is the global batch: each of the W processes draws B / W rows per step
  from its own generator, seeded from (seed, rank); minibatch OT couples within those rows.
- Gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`, so every
  process takes the same optimizer step and holds the same weights and EMA.
- The logged loss is the mean over all processes; only rank 0 writes the run folder.
- A stop (a signal, the time budget) is agreed on after every step, so all processes stop
  after the same one and rank 0 checkpoints it with every process's generator state.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError

__all__ = [
    "COLLECTIVE_TIMEOUT_S",
    "Job",
    "MainFailed",
    "PeerLost",
    "end_job",
    "leave_together",
    "new_stream_seed",
    "rank_seed",
    "start_job",
]

COLLECTIVE_TIMEOUT_S = 600
"""How long a process waits in one collective (a gradient average, a checkpoint) for the
others: longer than any checkpoint write or first compiled step, and the bound on a hang
where a peer neither answers nor dies (a process that dies closes its sockets, which the
others notice at once)."""

T = TypeVar("T")


class PeerLost(FlowmatchError):
    """Another process of the job stopped answering (it failed or was killed)."""

    quiet_under_launcher = True


class MainFailed(FlowmatchError):
    """Rank 0 failed at a step the others waited for; it prints the reason, they stay quiet."""

    quiet = True


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s generator: ``seed`` itself for rank 0 (so a job of one
    process draws what a plain run does), a hash of (seed, rank) for the others.

    Example:
        >>> rank_seed(7, 0), rank_seed(7, 1) == rank_seed(7, 1), rank_seed(7, 1) == 7
        (7, True, False)
    """
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0])


def new_stream_seed(seed: int, rank: int, world_size: int, step: int) -> int:
    """The seed of rank ``rank``'s generator when a run resumes at step ``step`` with another
    number of processes than it was saved with: a stream no earlier process drew from."""
    key = [seed, rank, world_size, step, 1]
    return int(np.random.SeedSequence(key).generate_state(1, np.uint64)[0])


@dataclass
class Job:
    """This process's place in its job: rank among ``world_size`` processes.

    A default ``Job()`` is a job of one process; every collective is then the identity.

    Attributes:
        rank: this process's global rank (0 writes the run folder).
        world_size: processes in the job, W.
        local_rank: this process's rank on its node (its CUDA device).
        local_world_size: processes on this node (they share its CPU cores).
        control: the process group of small host-side messages (stop flags, generator
            states, rank 0's results): gloo, also on an NCCL job.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    control: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, name: str) -> torch.device:
        """This process's device: ``cuda`` means ``cuda:LOCAL_RANK`` in a job of several."""
        device = torch.device(name)
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def local_batch(self, batch_size: int) -> int:
        """Rows each process draws per step: the global batch split evenly."""
        if batch_size % self.world_size:
            raise FlowmatchError(
                f"--batch-size {batch_size} does not split evenly over {self.world_size} "
                f"processes; use a multiple of {self.world_size}"
            )
        return batch_size // self.world_size

    # -- collectives ---------------------------------------------------------------------
    @contextlib.contextmanager
    def collective(self, what: str) -> Iterator[None]:
        """Turn a failed collective (a peer died, a timeout) into one line."""
        try:
            yield
        except RuntimeError as exc:  # DistBackendError and gloo's own errors
            reason = _first_line(exc)
            raise PeerLost(
                f"rank {self.rank}: lost contact with the other processes of the job while "
                f"{what} ({reason}); a process stopped or was killed (see its own message)"
            ) from None

    def most(self, value: int) -> int:
        """The largest of the processes' ``value`` (one small host-side all-reduce): how the
        processes agree on whether, and why, to stop after a step."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = torch.tensor([value], dtype=torch.int32)
        with self.collective("agreeing to go on"):
            dist.all_reduce(box, op=dist.ReduceOp.MAX, group=self.control)
        return int(box.item())

    def mean(self, value: Tensor) -> Tensor:
        """The mean of ``value`` over the processes (on its device, for the logged loss)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        value = value.detach().clone()
        with self.collective("averaging the loss"):
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def gather(self, obj: T) -> list[T]:
        """Every process's ``obj`` on rank 0, in rank order (``[]`` on the others)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        with self.collective("gathering the generator states"):
            dist.gather_object(obj, out, dst=0, group=self.control)
        return out or []

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 alone and return its result on every process.

        The others wait for it; if it fails, they raise :class:`MainFailed` (rank 0 prints
        the reason), so an error there never leaves them hanging.
        """
        if not self.distributed:
            return fn()
        if not self.is_main:
            kind, value = self._broadcast(None)
            if kind == "error":
                raise MainFailed(f"rank 0 failed: {value}")
            return value
        try:
            result = fn()
        except BaseException as exc:
            with contextlib.suppress(FlowmatchError):
                self._broadcast(("error", str(exc) or type(exc).__name__))
            raise
        self._broadcast(("ok", result))
        return result

    def _broadcast(self, obj: Any) -> Any:
        import torch.distributed as dist

        box = [obj]
        with self.collective("waiting for rank 0"):
            dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DistributedDataParallel (gradients averaged in backward), or
        itself in a job of one process. Its buffers are constants (the data statistics),
        so they are synced once, not every step."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device = next(module.parameters()).device
        ids = [device] if device.type == "cuda" else None
        with self.collective("setting up the gradient averaging"):
            return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message, at most 200 characters."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise FlowmatchError(
            f"environment variable {name}={value!r} is not an integer; torchrun sets it"
        ) from None


def start_job(device: str) -> Job:
    """Join the job torchrun started this process in (a job of one process without it).

    Args:
        device: the run's ``--device`` (cpu, cuda); picks the backend, gloo or NCCL.

    Returns:
        This process's :class:`Job`; end it with :func:`end_job`.

    Raises:
        FlowmatchError: a device the job cannot use, or a process group that cannot form.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return Job()
    import torch.distributed as dist

    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    local_world_size = _env_int("LOCAL_WORLD_SIZE", world_size)
    kind = torch.device(device).type
    if kind == "cuda":
        if torch.device(device).index is not None:
            raise FlowmatchError(
                f"--device {device} names one GPU, but each process of a job takes its own "
                "(cuda:LOCAL_RANK); give --device cuda"
            )
        if local_rank >= torch.cuda.device_count():
            raise FlowmatchError(
                f"process {local_rank} of this node needs cuda:{local_rank}, but "
                f"{torch.cuda.device_count()} CUDA devices are visible; start at most that "
                "many processes per node"
            )
        torch.cuda.set_device(local_rank)
    if not dist.is_available():
        raise FlowmatchError("this PyTorch build has no torch.distributed; use one process")
    backend = "nccl" if kind == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    try:
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=timeout)
        control = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
    except (RuntimeError, ValueError) as exc:
        reason = _first_line(exc)
        raise FlowmatchError(
            f"rank {rank}: cannot join the job's process group ({reason})"
        ) from None
    return Job(rank, world_size, local_rank, local_world_size, control)


def leave_together(job: Job) -> None:
    """Wait until every process has finished (after a run that ended well): a process that
    tears its group down while a peer still talks to it can abort in gloo's threads."""
    if job.distributed:
        import torch.distributed as dist

        with job.collective("finishing"):
            dist.barrier(group=job.control)


def end_job(job: Job) -> None:
    """Leave the process group (a job of one process has none)."""
    if not job.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        with contextlib.suppress(RuntimeError):
            dist.destroy_process_group()
