"""A velocity field with its data standardization: sample, invert and (later) log-density."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError, check_points
from flowmatch.models import VelocityModel
from flowmatch.solvers import ODESolution, solve

__all__ = ["FlowModel"]


class FlowModel(nn.Module):
    """A continuous flow: dx/dt = v(x, t) carries N(0, I) at t = 0 to the data at t = 1.

    The velocity network works on standardized data z = (x - mean) / std; this object converts
    to and from the user's units, so everything it returns is in data units.

    Args:
        velocity: the velocity network v(x_t, t, c).
        mean: per-feature mean of the training data, (D,).
        std: per-feature standard deviation of the training data, (D,).

    Example:
        >>> import torch
        >>> from flowmatch.models import MLPVelocity
        >>> flow = FlowModel(MLPVelocity(2, width=8, depth=1), torch.zeros(2), torch.ones(2))
        >>> flow.sample(4, solver="euler", steps=2, seed=0).shape
        torch.Size([4, 2])
    """

    def __init__(self, velocity: VelocityModel, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.velocity = velocity
        self.register_buffer("data_mean", mean.detach().clone().float())
        self.register_buffer("data_std", std.detach().clone().float())

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.velocity.shape)

    @property
    def dim(self) -> int:
        return int(torch.tensor(self.shape).prod())

    @property
    def device(self) -> torch.device:
        return self.data_mean.device

    # -- units ------------------------------------------------------------------------------
    def standardize(self, x: Tensor) -> Tensor:
        return (x - self.data_mean) / self.data_std

    def unstandardize(self, z: Tensor) -> Tensor:
        return z * self.data_std + self.data_mean

    # -- the ODE ------------------------------------------------------------------------------
    def field(self, cond: Tensor | None = None) -> Callable[[Tensor, Tensor], Tensor]:
        """The right-hand side f(t, z) = v(z, t, c) in standardized units, for the solvers."""
        return lambda t, z: self.velocity(z, t, cond)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n samples of the source N(0, I) (B, *shape) on the model's device."""
        return torch.randn(n, *self.shape, generator=generator).to(self.device)

    def transport(
        self,
        z: Tensor,
        t0: float,
        t1: float,
        *,
        cond: Tensor | None = None,
        solver: str = "midpoint",
        steps: int = 50,
        **solver_options,
    ) -> ODESolution:
        """Integrate dz/dt = v(z, t) from t0 to t1 in standardized units."""
        return solve(self.field(cond), z, t0, t1, solver=solver, steps=steps, **solver_options)

    @torch.no_grad()
    def sample_trajectory(
        self,
        n: int,
        *,
        solver: str = "midpoint",
        steps: int = 50,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | None = None,
        return_trajectory: bool = True,
        **solver_options,
    ) -> ODESolution:
        """Sample n points by integrating from noise (t = 0) to data (t = 1).

        Returns the solver's result with ``x`` (and ``trajectory``) in data units and the NFE.
        """
        if n < 1:
            raise FlowmatchError(f"the number of samples must be >= 1, got {n}")
        if generator is None:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
        sol = self.transport(
            self.noise(n, generator),
            0.0,
            1.0,
            cond=cond,
            solver=solver,
            steps=steps,
            return_trajectory=return_trajectory,
            **solver_options,
        )
        traj = None if sol.trajectory is None else self.unstandardize(sol.trajectory)
        return ODESolution(x=self.unstandardize(sol.x), nfe=sol.nfe, ts=sol.ts, trajectory=traj)

    def sample(self, n: int, **kwargs) -> Tensor:
        """Draw n samples (n, *shape) in data units; see :meth:`sample_trajectory` for options."""
        return self.sample_trajectory(n, return_trajectory=False, **kwargs).x

    @torch.no_grad()
    def invert(
        self,
        x: Tensor,
        *,
        solver: str = "midpoint",
        steps: int = 50,
        cond: Tensor | None = None,
        **solver_options,
    ) -> Tensor:
        """Map data x (N, *shape) back to its noise z_0 by integrating from t = 1 to t = 0."""
        x = check_points(x.to(self.device), "data", dim=self.dim).reshape(-1, *self.shape)
        sol = self.transport(
            self.standardize(x), 1.0, 0.0, cond=cond, solver=solver, steps=steps, **solver_options
        )
        return sol.x
