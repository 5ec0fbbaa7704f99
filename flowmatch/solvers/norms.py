"""Error norms of adaptive solvers: how one step's scaled error estimate becomes one number.

An adaptive solver accepts a step when ||e / (atol + rtol * max(|x_n|, |x_{n+1}|))|| <= 1,
with e the embedded error estimate of the whole (B, ...) state. The norm decides whose error
that is. ``batch`` is the RMS over every entry of the batch (torchdiffeq's default): a few
points may exceed the tolerance as long as the batch average does not, and a point's
accuracy depends on which other points share its batch. ``sample`` is the largest per-point
RMS: every point of the batch meets the tolerance on every step.

Example:
    >>> import torch
    >>> e = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # (B, D) scaled errors
    >>> round(ERROR_NORMS["batch"](e).item(), 3), round(ERROR_NORMS["sample"](e).item(), 3)
    (2.5, 3.536)
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from torch import Tensor

__all__ = ["ERROR_NORMS", "ErrorNorm", "batch_rms", "grouped_sample_norm", "sample_rms"]

ErrorNorm = Callable[[Tensor], Tensor]
"""``norm(e) -> ()`` for the (B, ...) scaled error e of one step; a step passes when <= 1."""


def batch_rms(e: Tensor) -> Tensor:
    """sqrt(mean(e^2)) over every entry of the batch."""
    return e.square().mean().sqrt()


def sample_rms(e: Tensor) -> Tensor:
    """max_b sqrt(mean_j e_bj^2): the worst point's RMS over its own entries."""
    return e.reshape(e.shape[0], -1).square().mean(dim=1).sqrt().max()


def grouped_sample_norm(sizes: tuple[int, ...]) -> ErrorNorm:
    """The worst point's worst group: max_b max_g RMS(e_b restricted to group g).

    For an augmented state (x, a) with a an accumulated integral, groups (D, 1) control the
    error of a on its own instead of letting the D entries of x dilute it in one RMS.

    Args:
        sizes: the sizes of consecutive column groups of the (B, sum(sizes)) state.

    Example:
        >>> import torch
        >>> norm = grouped_sample_norm((2, 1))
        >>> norm(torch.tensor([[0.1, 0.1, 2.0]])).item()
        2.0
    """
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)

    def norm(e: Tensor) -> Tensor:
        e = e.reshape(e.shape[0], -1)  # (B, n)
        parts = [e[:, lo:hi].square().mean(dim=1) for lo, hi in pairwise(bounds)]
        worst = parts[0]
        for part in parts[1:]:
            worst = worst.maximum(part)
        return worst.max().sqrt()

    return norm


ERROR_NORMS: dict[str, ErrorNorm] = {"batch": batch_rms, "sample": sample_rms}
"""Error norm name -> norm: ``batch`` (RMS over the batch) or ``sample`` (worst point's RMS)."""
