"""Time grids for fixed-step solvers: uniform, cosine, and one fitted to a model's error.

A grid is the (N + 1,) float64 tensor 0 = t_0 < t_1 < ... < t_N = 1 of the steps of a
fixed-grid solver, passed to :func:`~flowmatch.solvers.solve` as ``time_grid``. With few steps
the grid matters: a step of size h of an order-p method makes a local error of about
C h^(p+1) ||x^(p+1)(t)|| along the trajectory, so steps should be short where the trajectories
bend and long where they are straight.

``min-error`` estimates that bending from the model itself and places the steps to minimize
the sum of the local errors: with the error density a(t) = E_x0 ||x^(p+1)(t)|| and step sizes
h(t), minimizing sum_k h_k^(p+1) a(t_k) = int h(t)^p a(t) dt under int dt / h(t) = N gives, by a
Lagrange multiplier, h(t)^(p+1) a(t) = const: the steps equidistribute the local error, i.e.
the step density is proportional to a(t)^(1 / (p + 1)).

References:
    Hairer, Norsett & Wanner, "Solving Ordinary Differential Equations I" (1993), II.4 (step
    size selection); de Boor, "Good approximation by splines with variable knots" (1973), for
    equidistribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int, lookup
from flowmatch.solvers.base import VelocityField

__all__ = [
    "TIME_GRIDS",
    "TimeGrid",
    "cosine_grid",
    "error_density",
    "make_time_grid",
    "min_error_grid",
    "uniform_grid",
]

REFERENCE_STEPS = 32
"""Fine rk4 steps of the reference trajectories that ``min-error`` differentiates."""

DENSITY_FLOOR = 0.05
"""Share of the mean error density added everywhere, so straight stretches still get steps."""


def uniform_grid(steps: int) -> Tensor:
    """t_k = k / N, (N + 1,).

    Example:
        >>> uniform_grid(4).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)


def cosine_grid(steps: int) -> Tensor:
    """t_k = (1 - cos(pi k / N)) / 2: short steps at both ends, where fields are sharpest.

    Example:
        >>> [round(t, 4) for t in cosine_grid(2).tolist()]
        [0.0, 0.5, 1.0]
    """
    k = torch.arange(steps + 1, dtype=torch.float64)
    return (1.0 - torch.cos(math.pi * k / steps)) / 2.0


@torch.no_grad()
def error_density(
    f: VelocityField, x0: Tensor, order: int = 1, reference_steps: int = REFERENCE_STEPS
) -> tuple[Tensor, Tensor]:
    """a(t) = E ||d^p v(x_t, t) / dt^p|| = E ||x^(p+1)(t)|| along the field's trajectories.

    The trajectories from ``x0`` are solved with rk4 on a fine uniform grid of M steps; the
    velocity v_m = f(t_m, x_m) is evaluated at every grid point and differenced p times along
    each trajectory (the p-th derivative of v along the path is x^(p+1)).

    Args:
        f: the velocity field f(t, x).
        x0: (B, ...) starting points at t = 0.
        order: the order p of the solver the grid is for, >= 1.
        reference_steps: the fine grid's steps M, > order.

    Returns:
        ``(centers, density)``: (M + 1 - p,) times in [0, 1] and the (M + 1 - p,) density there.
    """
    from flowmatch.solvers.integrate import solve

    ts = uniform_grid(reference_steps)
    sol = solve(f, x0, solver="rk4", time_grid=ts.to(x0.dtype), return_trajectory=True)
    traj = sol.trajectory  # (M + 1, B, ...)
    v = torch.stack([f(ts[m].to(x0), traj[m]) for m in range(len(ts))])  # (M + 1, B, ...)
    v = v.reshape(len(ts), x0.shape[0], -1).double()
    h = 1.0 / reference_steps
    deriv, centers = v, ts.clone()
    for _ in range(order):
        deriv = deriv.diff(dim=0) / h
        centers = (centers[1:] + centers[:-1]) / 2.0
    return centers, deriv.norm(dim=2).mean(dim=1)


def min_error_grid(
    steps: int,
    f: VelocityField,
    x0: Tensor,
    order: int = 1,
    reference_steps: int = REFERENCE_STEPS,
) -> Tensor:
    """The grid whose N steps equidistribute the estimated local error (module docstring).

    The step density rho(t) = (a(t) + floor)^(1 / (p + 1)) is piecewise linear between the
    points of :func:`error_density`; t_k solves CDF(t_k) = k / N.

    Args:
        steps: N, the number of steps.
        f: the velocity field f(t, x), in the units the solver integrates.
        x0: (B, ...) starting points at t = 0, e.g. a few hundred source draws.
        order: the solver's order p (1 for Euler, 2 for midpoint or Heun, 4 for rk4).
        reference_steps: fine rk4 steps used to estimate a(t).

    Returns:
        (N + 1,) float64 grid from 0 to 1.
    """
    centers, a = error_density(f, x0, order, reference_steps)
    a = a + DENSITY_FLOOR * a.mean().clamp_min(1e-12)
    rho = a.pow(1.0 / (order + 1))  # (K,)
    # a fine piecewise-linear density on [0, 1], its CDF, and the inverse at k / N
    knots = torch.cat([torch.zeros(1, dtype=rho.dtype), centers, torch.ones(1, dtype=rho.dtype)])
    values = torch.cat([rho[:1], rho, rho[-1:]])
    cells = (values[1:] + values[:-1]) / 2.0 * knots.diff()  # trapezoid mass per interval
    cdf = torch.cat([torch.zeros(1, dtype=rho.dtype), cells.cumsum(0)])
    cdf = cdf / cdf[-1]
    targets = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    idx = torch.searchsorted(cdf, targets, right=True).clamp(1, len(cdf) - 1)
    lo, hi = cdf[idx - 1], cdf[idx]
    frac = ((targets - lo) / (hi - lo).clamp_min(1e-300)).clamp(0.0, 1.0)
    grid = knots[idx - 1] + frac * (knots[idx] - knots[idx - 1])
    grid[0], grid[-1] = 0.0, 1.0
    return torch.cummax(grid, dim=0).values


@dataclass(frozen=True)
class TimeGrid:
    """One entry of :data:`TIME_GRIDS`.

    Attributes:
        name: the registry key, also the ``--time-grid`` choice.
        description: one line for ``--help``.
        needs_field: whether the grid is fitted to a model (needs ``f`` and ``x0``).
        build: ``build(steps, f, x0, order) -> (steps + 1,)`` float64 grid.
    """

    name: str
    description: str
    needs_field: bool
    build: Callable[[int, VelocityField | None, Tensor | None, int], Tensor]


TIME_GRIDS: dict[str, TimeGrid] = {
    g.name: g
    for g in (
        TimeGrid("uniform", "t_k = k / N", False, lambda n, f, x0, p: uniform_grid(n)),
        TimeGrid(
            "cosine", "t_k = (1 - cos(pi k / N)) / 2", False, lambda n, f, x0, p: cosine_grid(n)
        ),
        TimeGrid(
            "min-error",
            "equidistributes the local error estimated from the model",
            True,
            lambda n, f, x0, p: min_error_grid(n, f, x0, p),
        ),
    )
}
"""Time grid name -> :class:`TimeGrid`; the names are the ``--time-grid`` choices."""


def make_time_grid(
    name: str,
    steps: int,
    *,
    f: VelocityField | None = None,
    x0: Tensor | None = None,
    order: int = 1,
) -> Tensor:
    """Build the named (steps + 1,) grid from 0 to 1.

    Args:
        name: a key of :data:`TIME_GRIDS`.
        steps: N >= 1.
        f: the velocity field, for grids fitted to a model.
        x0: (B, ...) source points, for grids fitted to a model.
        order: the order of the solver that will use the grid.

    Example:
        >>> make_time_grid("uniform", 2).tolist()
        [0.0, 0.5, 1.0]
    """
    spec = lookup(TIME_GRIDS, name, "time grid")
    check_int(steps, "steps")
    if spec.needs_field and (f is None or x0 is None):
        raise FlowmatchError(f"the '{name}' time grid is fitted to a model; pass f and x0")
    return spec.build(steps, f, x0, order)
