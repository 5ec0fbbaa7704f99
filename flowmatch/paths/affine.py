"""Affine probability paths: x_t = alpha_t x1 + sigma_t x0 and their target velocity.

The built-in paths, by command-line name (``--path``):

- ``linear``: x_t = (1 - t) x0 + t x1, u_t = x1 - x0 (the tutorial's); with ``--sigma-min s``
  it becomes x_t = t x1 + (1 - (1 - s) t) x0, u_t = x1 - (1 - s) x0 (Lipman et al.).
- ``cosine``: x_t = sin(pi t / 2) x1 + cos(pi t / 2) x0, variance preserving
  (alpha_t^2 + sigma_t^2 = 1).

Any other schedule is one line of Python: ``AffinePath(Schedule.from_functions(alpha, sigma))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.paths.schedules import CosineSchedule, LinearSchedule, Schedule, check_sigma_min

__all__ = ["PATHS", "AffinePath", "PathSample", "get_path"]


@dataclass(frozen=True)
class PathSample:
    """One draw from a conditional probability path.

    Attributes:
        x0: noise, (B, *shape).
        x1: data, (B, *shape).
        t: times, (B,).
        xt: the point on the path at time t, (B, *shape).
        ut: the target velocity d xt / dt, (B, *shape).
    """

    x0: Tensor
    x1: Tensor
    t: Tensor
    xt: Tensor
    ut: Tensor


class AffinePath:
    """The path x_t = alpha_t x1 + sigma_t x0, with target u_t = alpha'_t x1 + sigma'_t x0.

    With the linear schedule this is the tutorial's x_t = (1 - t) x0 + t x1 with u_t = x1 - x0.

    Args:
        schedule: the coefficients alpha_t and sigma_t.

    Example:
        >>> import torch
        >>> path = AffinePath(LinearSchedule())
        >>> s = path.sample(torch.zeros(2, 3), torch.ones(2, 3), torch.tensor([0.25, 0.5]))
        >>> s.xt[:, 0].tolist(), s.ut[0, 0].item()
        ([0.25, 0.5], 1.0)
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def sample(self, x0: Tensor, x1: Tensor, t: Tensor) -> PathSample:
        """x_t and u_t for noise ``x0`` (B, ...), data ``x1`` (B, ...) and times ``t`` (B,)."""
        tb = t.reshape(-1, *([1] * (x1.ndim - 1)))  # broadcast over features
        plain = type(self.schedule) is LinearSchedule and self.schedule.sigma_min == 0
        if plain:  # (1 - t) x0 + t x1 and x1 - x0, in two ops
            return PathSample(x0=x0, x1=x1, t=t, xt=torch.lerp(x0, x1, tb), ut=x1 - x0)
        c = self.schedule(tb)
        xt = c.alpha * x1 + c.sigma * x0
        ut = c.d_alpha * x1 + c.d_sigma * x0
        return PathSample(x0=x0, x1=x1, t=t, xt=xt, ut=ut)

    def __repr__(self) -> str:
        return f"AffinePath({self.schedule!r})"


PATHS: dict[str, AffinePath] = {
    "linear": AffinePath(LinearSchedule()),
    "cosine": AffinePath(CosineSchedule()),
}


"""Path name -> the path; the names are the ``--path`` choices."""


def get_path(name: str, sigma_min: float = 0.0) -> AffinePath:
    """Look up a path by its command-line name (``--path``), with ``--sigma-min``.

    Args:
        name: a key of :data:`PATHS`.
        sigma_min: the noise std left at t = 1, in [0, 1); only the linear path has one, and
            0 gives the plain path.

    Example:
        >>> get_path("linear", sigma_min=1e-4)
        AffinePath(LinearSchedule(sigma_min=0.0001))
    """
    from flowmatch.errors import FlowmatchError, lookup

    path = lookup(PATHS, name, "path")
    if check_sigma_min(sigma_min) == 0:
        return path
    if type(path.schedule) is not LinearSchedule:
        raise FlowmatchError(
            f"sigma_min applies to the linear path only, got path {name!r} with "
            f"sigma_min {sigma_min}; use --path linear or --sigma-min 0"
        )
    return AffinePath(LinearSchedule(sigma_min))
