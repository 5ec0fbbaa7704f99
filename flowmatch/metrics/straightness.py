"""How straight a flow's trajectories are, and how much kinetic energy they spend.

Along a trajectory of dx/dt = v(x_t, t) from x_0 to x_1, the chord is c = x_1 - x_0. Because
int_0^1 v dt = c, the squared deviation of the velocity from the chord obeys

    int_0^1 ||v(x_t, t) - c||^2 dt = int_0^1 ||v(x_t, t)||^2 dt - ||c||^2,

so the straightness S = E_x0 int ||v - c||^2 dt is the path energy PE = E int ||v||^2 dt minus
the chord energy E ||x_1 - x_0||^2. S = 0 exactly when every trajectory is a straight line
run at constant speed; then one Euler step is exact. Both integrals are computed with the same
solve, by appending int ||v||^2 dt to the state; for an explicit Runge-Kutta method with
non-negative weights (Euler, midpoint, Heun, rk4) the identity then holds exactly for the
discrete solve too, so S >= 0 to rounding.

The normalized straightness S / E ||x_1 - x_0||^2 has no units. The normalized path energy
NPE = |PE - W2^2(p0, p1)| / W2^2(p0, p1) compares PE with the least energy any map from p0 to
p1 can spend, the squared 2-Wasserstein distance (Benamou-Brenier); it is 0 for the optimal
transport flow.

References:
    Liu et al., "Flow Straight and Fast: Learning to Generate and Transfer Data with
    Rectified Flow" (2023), for the straightness measure; Tong et al., "Improving and
    Generalizing Flow-Based Generative Models with Minibatch Optimal Transport" (2024), for the
    normalized path energy; Benamou & Brenier, "A computational fluid mechanics solution to the
    Monge-Kantorovich mass transfer problem" (2000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_points
from flowmatch.solvers import VelocityField, solve

__all__ = ["PathStatistics", "normalized_path_energy", "path_statistics"]


@dataclass
class PathStatistics:
    """Averages over the trajectories of a flow from B starting points.

    Attributes:
        straightness: S = E int_0^1 ||v(x_t, t) - (x_1 - x_0)||^2 dt.
        normalized_straightness: S / E ||x_1 - x_0||^2 (0 for straight paths).
        path_energy: PE = E int_0^1 ||v(x_t, t)||^2 dt.
        chord_energy: E ||x_1 - x_0||^2.
        per_sample: (B,) the straightness of each trajectory.
        x1: (B, ...) the trajectories' end points.
        nfe: velocity evaluations of the solve.
    """

    straightness: float
    normalized_straightness: float
    path_energy: float
    chord_energy: float
    per_sample: Tensor
    x1: Tensor
    nfe: int


@torch.no_grad()
def path_statistics(
    f: VelocityField,
    x0: Tensor,
    *,
    solver: str = "dopri5",
    steps: int = 100,
    time_grid: Tensor | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> PathStatistics:
    """Straightness and path energy of dx/dt = f(t, x) from ``x0`` over t in [0, 1].

    Args:
        f: velocity field f(t, x) with t a 0-dim tensor and x of x0's shape.
        x0: (B, ...) starting points, finite.
        solver: an ODE solver name.
        steps: steps of a fixed-grid solver.
        time_grid: (N + 1,) grid of a fixed-grid solver instead of ``steps``.
        atol: absolute tolerance of an adaptive solver.
        rtol: relative tolerance of an adaptive solver.

    Returns:
        The :class:`PathStatistics`.

    Example:
        >>> x0 = torch.randn(5, 2, dtype=torch.float64)
        >>> rotation = lambda t, x: torch.stack([-x[:, 1], x[:, 0]], dim=1)
        >>> s = path_statistics(rotation, x0, solver="rk4", steps=50)
        >>> # a unit-speed arc of 1 radian: S = |x0|^2 (2 cos 1 - 1) per point
        >>> expected = (x0.square().sum(1) * (2 * math.cos(1.0) - 1)).mean().item()
        >>> abs(s.straightness - expected) < 1e-6
        True
    """
    check_points(x0, "x0")
    b = x0.shape[0]
    flat0 = x0.reshape(b, -1)  # (B, D)
    shape = x0.shape

    def augmented(t: Tensor, state: Tensor) -> Tensor:  # state (B, D + 1) = (x, int ||v||^2)
        v = f(t, state[:, :-1].reshape(shape)).reshape(b, -1)  # (B, D)
        return torch.cat([v, v.square().sum(dim=1, keepdim=True)], dim=1)

    state0 = torch.cat([flat0, torch.zeros(b, 1, dtype=x0.dtype, device=x0.device)], dim=1)
    kwargs = {"time_grid": time_grid} if time_grid is not None else {}
    sol = solve(
        augmented, state0, 0.0, 1.0, solver=solver, steps=steps, atol=atol, rtol=rtol, **kwargs
    )
    x1 = sol.x[:, :-1]  # (B, D)
    energy = sol.x[:, -1].double()  # (B,)
    chord = (x1 - flat0).double().square().sum(dim=1)  # (B,)
    per_sample = energy - chord  # (B,)
    s, c = per_sample.mean().item(), chord.mean().item()
    return PathStatistics(
        straightness=s,
        normalized_straightness=s / c if c > 0 else 0.0,
        path_energy=energy.mean().item(),
        chord_energy=c,
        per_sample=per_sample,
        x1=x1.reshape(shape),
        nfe=sol.nfe,
    )


def normalized_path_energy(path_energy: float, w2_squared: float) -> float:
    """NPE = |PE - W2^2| / W2^2, the relative excess of a flow's energy over optimal transport.

    Args:
        path_energy: PE = E int ||v||^2 dt of the flow.
        w2_squared: W2^2(p0, p1) between the flow's source and target, > 0.

    Example:
        >>> round(normalized_path_energy(1.2, 1.0), 12)
        0.2
    """
    if not (math.isfinite(w2_squared) and w2_squared > 0):
        raise FlowmatchError(f"W2^2 must be a positive number, got {w2_squared}")
    return abs(path_energy - w2_squared) / w2_squared
