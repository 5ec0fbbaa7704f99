"""Affine probability paths: x_t = alpha_t x1 + sigma_t x0 and their target velocity."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.paths.schedules import CosineSchedule, LinearSchedule, Schedule

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
        if type(self.schedule) is LinearSchedule:  # (1 - t) x0 + t x1 and x1 - x0, in two ops
            return PathSample(x0=x0, x1=x1, t=t, xt=torch.lerp(x0, x1, tb), ut=x1 - x0)
        c = self.schedule(tb)
        xt = c.alpha * x1 + c.sigma * x0
        ut = c.d_alpha * x1 + c.d_sigma * x0
        return PathSample(x0=x0, x1=x1, t=t, xt=xt, ut=ut)


PATHS: dict[str, AffinePath] = {
    "linear": AffinePath(LinearSchedule()),
    "cosine": AffinePath(CosineSchedule()),
}


def get_path(name: str) -> AffinePath:
    """Look up a path by its command-line name."""
    from flowmatch.errors import lookup

    return lookup(PATHS, name, "path")
