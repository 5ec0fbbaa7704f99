"""User-facing errors and the boundary checks that raise them."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import TypeVar

import torch
from torch import Tensor

__all__ = [
    "SEED_MAX",
    "FlowmatchError",
    "available_memory",
    "check_device",
    "check_finite",
    "check_int",
    "check_memory",
    "check_points",
    "check_seed",
    "lookup",
    "usable_cores",
]

SEED_MAX = 2**63 - 1
"""The largest seed: torch takes up to 2**64 - 1, so seed + 1 still fits."""

V = TypeVar("V")


class FlowmatchError(ValueError):
    """A problem with the user's input, stated in one line with what to do about it.

    The command line prints the message alone and exits non-zero; the Python API lets it
    propagate like any ``ValueError``.
    """


def check_points(x: Tensor, name: str = "x", dim: int | None = None) -> Tensor:
    """Check that ``x`` is a finite floating-point batch of shape (N, D) or (N, *shape).

    Args:
        x: the batch to check.
        name: how to call it in the error message.
        dim: the number of features per sample expected (``x[0].numel()``), if known.

    Returns:
        ``x`` itself, so the call can be chained.
    """
    if not isinstance(x, Tensor):
        raise FlowmatchError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise FlowmatchError(f"{name} must have shape (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise FlowmatchError(f"{name} is empty (0 samples); pass at least one sample")
    if not torch.is_floating_point(x):
        raise FlowmatchError(f"{name} must be floating point, got dtype {x.dtype}")
    if dim is not None and x[0].numel() != dim:
        raise FlowmatchError(
            f"{name} has {x[0].numel()} features per sample but {dim} are expected"
        )
    check_finite(x, name)
    return x


def check_finite(x: Tensor, name: str = "x") -> Tensor:
    """Raise a :class:`FlowmatchError` naming the first NaN or Inf in ``x``."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        kind = "NaN" if torch.isnan(x[idx]) else "Inf"
        raise FlowmatchError(
            f"{name} contains {int(bad.sum())} non-finite values ({kind} at index {idx}); "
            "remove or impute them first"
        )
    return x


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """Check that ``value`` is an integer (not a bool) >= ``minimum`` and return it.

    Args:
        value: what the caller received.
        name: how to call it in the error message, e.g. ``"--steps"`` or ``"n"``.
        minimum: the smallest value allowed.

    Example:
        >>> check_int(3, "--steps")
        3
        >>> check_int(0, "--steps")
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: --steps must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FlowmatchError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def lookup(registry: Mapping[str, V] | Collection[str], name: str, what: str) -> V | str:
    """The entry ``name`` of ``registry``, or one line naming what exists.

    Args:
        registry: name -> entry (solvers, paths, couplings, data sets, ...), or a collection
            of names, for which the name itself is returned.
        name: the name asked for.
        what: what the names are, e.g. ``"solver"`` or ``"--coupling"``.

    Example:
        >>> lookup({"euler": 1, "rk4": 4}, "rk4", "solver")
        4
        >>> lookup({"euler": 1, "rk4": 4}, "rk5", "solver")
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: unknown solver 'rk5'; choose one of: euler, rk4
    """
    if isinstance(name, str) and name in registry:
        return registry[name] if isinstance(registry, Mapping) else name
    raise FlowmatchError(f"unknown {what} {name!r}; choose one of: {', '.join(registry)}")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes a new allocation can get on ``device``: free GPU memory, or the machine's available
    RAM on the CPU (Linux's MemAvailable, else physical memory; 0 where neither is known)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(nbytes: int, what: str, device: torch.device | str = "cpu") -> None:
    """Refuse, before allocating, a request that cannot fit in the memory of ``device``.

    Args:
        nbytes: an estimate of the bytes the request needs.
        what: the request, for the message, e.g. ``"--n 1000000000000 samples of 2 floats"``.
        device: where the memory would be allocated.

    Example:
        >>> check_memory(1024, "a small batch")
        >>> check_memory(2**80, "--n 10**20 samples")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: --n 10**20 samples needs about ... GiB ...
    """
    free = available_memory(device)
    if free and nbytes > free:
        raise FlowmatchError(
            f"{what} needs about {nbytes / 2**30:.3g} GiB but {torch.device(device)} has "
            f"{free / 2**30:.3g} GiB available; ask for less"
        )


def check_seed(value: object, name: str = "--seed", *, optional: bool = False) -> int | None:
    """Check a seed: an integer from 0 to :data:`SEED_MAX` (or None, if ``optional``: a
    random, not reproducible draw).

    Example:
        >>> check_seed(-1)
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: --seed must be an integer in [0, 2**63 - 1], got -1
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise FlowmatchError(f"{name} must be an integer in [0, 2**63 - 1], got {value!r}")
    return value


def check_device(name: object, flag: str = "--device") -> torch.device:
    """The torch device ``name`` stands for (cpu, cuda or cuda:N), checked to exist here.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("meta")
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: unknown --device 'meta'; use cpu, cuda or cuda:N
    """
    try:
        device = torch.device(name) if isinstance(name, str | torch.device) else None
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):  # meta, mps, garbage
        raise FlowmatchError(f"unknown {flag} {name!r}; use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FlowmatchError(f"{flag} {name} was asked for, but there is no CUDA GPU; use cpu")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise FlowmatchError(
                f"{flag} {name} was asked for, but this machine has {count} GPU(s)"
            )
    return device
