"""Explicit Runge-Kutta integration on a fixed time grid, driven by a Butcher tableau."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from flowmatch.solvers.base import ODESolution, SolverSpec, VelocityField
from flowmatch.solvers.tableaus import ButcherTableau

__all__ = ["FixedGridSolver", "rk_integrate"]


def rk_integrate(
    f: VelocityField,
    x0: Tensor,
    grid: Tensor,
    tableau: ButcherTableau,
    *,
    return_trajectory: bool = False,
) -> ODESolution:
    """Integrate dx/dt = f(t, x) with an explicit Runge-Kutta method, one step per grid interval.

    With h_n = t_{n+1} - t_n (negative when integrating backward), each step computes

        k_i = f(t_n + c_i h_n, x_n + h_n sum_{j<i} a_ij k_j),    x_{n+1} = x_n + h_n sum_i b_i k_i.

    The stage times are computed once before the loop and the step sizes are Python floats,
    so the loop itself never synchronizes with the device; each step allocates only its s
    slopes and s stage states. Gradients flow through the whole solve.

    Args:
        f: velocity field ``f(t, x)`` with ``t`` a 0-dim tensor of ``x``'s dtype and device.
        x0: (B, ...) initial state at ``grid[0]``.
        grid: (T,) strictly monotone times, T >= 2, either direction.
        tableau: the method's coefficients.
        return_trajectory: also return the states at every grid time.

    Returns:
        The :class:`ODESolution`; ``nfe`` is exactly ``tableau.stages * (T - 1)``.

    References:
        Butcher, "Numerical Methods for Ordinary Differential Equations" (2016).

    Example:
        >>> import torch
        >>> from flowmatch.solvers.tableaus import EULER
        >>> sol = rk_integrate(lambda t, x: -x, torch.ones(2, 1), torch.linspace(0, 1, 3), EULER)
        >>> sol.x.squeeze(1).tolist(), sol.nfe
        ([0.25, 0.25], 2)
    """
    grid64 = grid.detach().to("cpu", torch.float64)  # (T,)
    dt = grid64.diff()  # (T-1,)
    c = torch.tensor(tableau.c, dtype=torch.float64)  # (s,)
    stage_t = (grid64[:-1, None] + dt[:, None] * c).to(x0.device, x0.dtype)  # (T-1, s)
    times = iter(stage_t.reshape(-1).unbind())  # 0-dim views, consumed in order
    steps = dt.tolist()
    rows, weights = tableau.nonzero_a, tableau.nonzero_b

    x = x0
    states = [x0] if return_trajectory else None
    for h in steps:
        k: list[Tensor] = []
        for row in rows:
            xi = x
            if row:
                (j, a), *rest = row
                xi = torch.add(x, k[j], alpha=h * a)
                for j, a in rest:
                    xi.add_(k[j], alpha=h * a)  # xi is fresh: safe for autograd
            k.append(f(next(times), xi))
        (i, b), *rest_b = weights
        x_next = torch.add(x, k[i], alpha=h * b)
        for i, b in rest_b:
            x_next.add_(k[i], alpha=h * b)
        x = x_next
        if states is not None:
            states.append(x)

    nfe = tableau.stages * len(steps)
    if states is None:
        return ODESolution(x=x, nfe=nfe)
    ts = grid64.to(x0.device, x0.dtype)
    return ODESolution(x=x, nfe=nfe, ts=ts, trajectory=torch.stack(states))


@dataclass(frozen=True)
class FixedGridSolver(SolverSpec):
    """A registry entry for an explicit Runge-Kutta method on a fixed grid.

    Attributes:
        tableau: the method's Butcher tableau.
    """

    tableau: ButcherTableau

    adaptive: ClassVar[bool] = False

    @property
    def stages(self) -> int:
        """Velocity evaluations per step."""
        return self.tableau.stages

    def run(
        self,
        f: VelocityField,
        x0: Tensor,
        ts: Tensor,
        *,
        atol: float,
        rtol: float,
        return_trajectory: bool,
        error_norm=None,
    ) -> ODESolution:
        """Step exactly on ``ts``; ``atol``, ``rtol`` and ``error_norm`` are unused."""
        return rk_integrate(f, x0, ts, self.tableau, return_trajectory=return_trajectory)
