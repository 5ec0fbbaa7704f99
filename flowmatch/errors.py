"""User-facing errors and the boundary checks that raise them."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["FlowmatchError", "check_finite", "check_points"]


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
