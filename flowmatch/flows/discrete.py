"""A discrete flow with its data standardization, used exactly like a continuous FlowModel."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError, check_points
from flowmatch.flows.stack import FlowStack, standard_normal_log_prob
from flowmatch.solvers import ODESolution

__all__ = ["DiscreteFlowModel"]


class DiscreteFlowModel(nn.Module):
    """A stack x = f_K ∘ ... ∘ f_1(z) from N(0, I) to standardized data, in data units.

    It has the interface of :class:`~flowmatch.flows.continuous.FlowModel`, so the command line,
    evaluation and figures use it unchanged: ``sample_trajectory`` (the "trajectory" is the
    state after each layer, at times k/K, and NFE counts layer evaluations), ``sample``,
    ``invert`` (data -> noise) and ``log_prob`` (nats, data units). Solver options are
    accepted and ignored: there is no ODE to solve.

    The stack works on standardized, flattened data z = (x - mean) / std of shape (B, D);
    :meth:`log_prob` adds the log-det of the standardization, -Σ log std.

    Args:
        stack: the layers, with ``stack.dim`` = D = prod(shape).
        shape: the shape of one sample, e.g. (2,).
        mean: per-feature mean of the training data, (D,).
        std: per-feature standard deviation of the training data, (D,).

    Example:
        >>> from flowmatch.flows import planar_stack
        >>> _ = torch.manual_seed(0)
        >>> flow = DiscreteFlowModel(planar_stack(2, 4), (2,), torch.zeros(2), torch.ones(2))
        >>> x = flow.sample(5, seed=0)
        >>> bool(torch.allclose(flow.invert(x), torch.randn(5, 2, generator=
        ...     torch.Generator().manual_seed(0)), atol=1e-5))
        True
    """

    discrete = True  # no ODE: evaluation and the command line skip their solver settings

    def __init__(self, stack: FlowStack, shape: tuple[int, ...], mean: Tensor, std: Tensor):
        super().__init__()
        self._shape = tuple(int(s) for s in shape)
        if math.prod(self._shape) != stack.dim:
            raise FlowmatchError(
                f"the stack has dim {stack.dim} but samples of shape {self._shape} have "
                f"{math.prod(self._shape)} features"
            )
        self.stack = stack
        self.register_buffer("data_mean", mean.detach().clone().float().reshape(-1))
        self.register_buffer("data_std", std.detach().clone().float().reshape(-1))

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dim(self) -> int:
        return self.stack.dim

    @property
    def device(self) -> torch.device:
        return self.data_mean.device

    # -- units ------------------------------------------------------------------------------
    def standardize(self, x: Tensor) -> Tensor:
        """(N, *shape) data -> (N, *shape) standardized."""
        n = x.shape[0]
        return ((x.reshape(n, -1) - self.data_mean) / self.data_std).reshape(x.shape)

    def unstandardize(self, z: Tensor) -> Tensor:
        """(..., N, *shape) standardized -> data units."""
        flat = z.reshape(*z.shape[: z.ndim - len(self.shape)], self.dim)
        return (flat * self.data_std + self.data_mean).reshape(z.shape)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws of N(0, I) of shape (n, *shape), as :meth:`FlowModel.noise` draws them."""
        return torch.randn(n, *self.shape, generator=generator).to(self.data_mean)

    # -- densities --------------------------------------------------------------------------
    def log_prob_standardized(self, z: Tensor) -> Tensor:
        """log p(z) of standardized data (B, *shape) -> (B,), differentiable (the ML loss)."""
        return self.stack.log_prob(z.reshape(z.shape[0], self.dim))

    @torch.no_grad()
    def log_prob(self, x: Tensor, **ignored) -> Tensor:
        """log p(x) in nats for data x (N, *shape) in data units; returns (N,).

        log p(x) = log N(f^{-1}(z)) + log|det ∂f^{-1}/∂z| - Σ_i log std_i, z = standardize(x).
        Exact up to floating point: the inverse of each planar layer is solved to precision.
        Keyword options of the continuous models (solver, steps, divergence, ...) are ignored.
        Like :meth:`FlowModel.log_prob` it records no gradients; differentiate
        :meth:`log_prob_standardized` instead.
        """
        x = check_points(x, "x", dim=self.dim).to(self.data_mean)
        return self.log_prob_standardized(self.standardize(x)) - self.data_std.log().sum()

    def sample_and_log_prob(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n draws x (n, *shape) in data units with their log q(x) (n,), from the forward pass
        alone; reparametrized, so gradients reach the parameters (the reverse-KL objective).
        """
        z = self.noise(n, generator).reshape(n, self.dim)
        x, ladj = self.stack(z)
        log_q = standard_normal_log_prob(z) - ladj - self.data_std.log().sum()
        return self.unstandardize(x.reshape(n, *self.shape)), log_q

    # -- the two directions -------------------------------------------------------------------
    @torch.no_grad()
    def sample_trajectory(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | None = None,
        return_trajectory: bool = True,
        **ignored,
    ) -> ODESolution:
        """Sample n points by pushing N(0, I) noise through the layers.

        Returns an :class:`ODESolution` with ``x`` (n, *shape) in data units, ``nfe`` = the
        number of layers, and, if asked, ``trajectory`` (L + 1, n, *shape) holding the noise
        and the state after each of the L layers, at ``ts`` = k / L.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise FlowmatchError(f"the number of samples must be >= 1, got {n}")
        if cond is not None:
            raise FlowmatchError("this flow is unconditional; drop the condition")
        if generator is None:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.noise(n, generator).reshape(n, self.dim)
        layers = len(self.stack)
        if return_trajectory:
            states = self.stack.states(z)  # (L + 1, n, D)
            traj = self.unstandardize(states.reshape(layers + 1, n, *self.shape))
            ts = torch.linspace(0.0, 1.0, layers + 1)
            return ODESolution(x=traj[-1], nfe=layers, ts=ts, trajectory=traj)
        x, _ = self.stack(z)
        return ODESolution(x=self.unstandardize(x.reshape(n, *self.shape)), nfe=layers)

    def sample(self, n: int, **kwargs) -> Tensor:
        """Draw n samples (n, *shape) in data units; see :meth:`sample_trajectory`."""
        return self.sample_trajectory(n, return_trajectory=False, **kwargs).x

    @torch.no_grad()
    def invert(self, x: Tensor, **ignored) -> Tensor:
        """Map data x (N, *shape) back to its noise z_0 = f^{-1}(standardize(x)), (N, *shape)."""
        x = check_points(x, "data", dim=self.dim).to(self.data_mean)
        z = self.standardize(x).reshape(x.shape[0], self.dim)
        return self.stack.inverse(z)[0].reshape(x.shape[0], *self.shape)
