"""A discrete flow: a stack of layers with its data standardization, as a :class:`Flow`."""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int, check_points
from flowmatch.flows.base import ODE_OPTIONS, Flow, make_generator
from flowmatch.flows.stack import FlowStack, standard_normal_log_prob
from flowmatch.likelihood import LogProbResult
from flowmatch.solvers import ODESolution

__all__ = ["DiscreteFlowModel"]


class DiscreteFlowModel(Flow):
    """A stack x = f_K ∘ ... ∘ f_1(z) from N(0, I) to standardized data, in data units.

    A :class:`~flowmatch.flows.base.Flow` with ``integrates_ode = False``: the "trajectory" is
    the state after each layer, at times k/K, the NFE counts layer evaluations, and
    log-densities are exact (their ``stderr`` is zero). It takes the shared keyword set
    (``seed``, ``generator``, ``cond``, ``batch_size``) and no solver options: callers pass
    those only when ``flow.integrates_ode``. For one release, the names of
    :data:`~flowmatch.flows.base.ODE_OPTIONS` are still accepted with a ``DeprecationWarning``
    (they change nothing); any other keyword is a ``TypeError``.

    The stack works on standardized, flattened data z = (x - mean) / std of shape (B, D);
    log-densities add the log-det of the standardization, -Σ log std.

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
        >>> bool(torch.allclose(flow.invert(x), flow.noise(5, torch.Generator().manual_seed(0)),
        ...     atol=1e-5))
        True

    References:
        Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015).
    """

    integrates_ode: ClassVar[bool] = False

    def __init__(self, stack: FlowStack, shape: tuple[int, ...], mean: Tensor, std: Tensor):
        super().__init__(mean, std)
        self._shape = tuple(int(s) for s in shape)
        if math.prod(self._shape) != stack.dim:
            raise FlowmatchError(
                f"the stack has dim {stack.dim} but samples of shape {self._shape} have "
                f"{math.prod(self._shape)} features"
            )
        self.stack = stack

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one sample."""
        return self._shape

    @property
    def discrete(self) -> bool:
        """Deprecated: check ``not flow.integrates_ode`` instead."""
        warnings.warn(
            "DiscreteFlowModel.discrete is deprecated; check `not flow.integrates_ode`",
            DeprecationWarning,
            stacklevel=2,
        )
        return True

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws of N(0, I) of shape (n, *shape), as :meth:`FlowModel.noise` draws them."""
        return torch.randn(n, *self.shape, generator=generator).to(self.data_mean)

    # -- densities --------------------------------------------------------------------------
    def log_prob_standardized(self, z: Tensor) -> Tensor:
        """log p(z) of standardized data (B, *shape) -> (B,), differentiable (the ML loss)."""
        return self.stack.log_prob(z.reshape(z.shape[0], self.dim))

    def log_prob(self, x: Tensor, *, cond: Tensor | None = None, **ode_options: Any) -> Tensor:
        """log p(x) in nats for data x (N, *shape) in data units; returns (N,).

        See :meth:`log_prob_with_stats`.
        """
        return self.log_prob_with_stats(x, cond=cond, **ode_options).log_prob

    @torch.no_grad()
    def log_prob_with_stats(
        self,
        x: Tensor,
        *,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        cond: Tensor | None = None,
        batch_size: int | None = None,
        **ode_options: Any,
    ) -> LogProbResult:
        """log p(x) = log N(f^{-1}(z)) + log|det ∂f^{-1}/∂z| - Σ_i log std_i, z = standardize(x).

        Exact up to floating point: the inverse of each planar layer is solved to precision,
        so ``stderr`` is zero and ``seed`` / ``generator`` are unused. Records no gradients;
        differentiate :meth:`log_prob_standardized` instead.

        Args:
            x: (N, *shape) or (N, D) points in data units.
            seed: unused (the log-density is exact).
            generator: unused.
            cond: must be None: the flow is unconditional.
            batch_size: points per pass (all at once if None), to bound memory.
            ode_options: deprecated solver options, ignored with a warning.

        Returns:
            ``log_prob`` (N,) in nats, ``stderr`` zeros (N,), ``x`` the noise z_0 (N, *shape)
            and ``nfe`` the number of layers.
        """
        _refuse_ode_options("log_prob_with_stats", ode_options)
        _refuse_condition(cond)
        x = check_points(x, "x", dim=self.dim).to(self.data_mean)
        n = x.shape[0]
        size = n if batch_size is None else check_int(batch_size, "batch_size")
        z1 = self.standardize(x.reshape(n, *self.shape)).reshape(n, self.dim)  # (N, D)
        parts = [self.stack.inverse(z1[i : i + size]) for i in range(0, n, size)]
        z0, ladj = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        log_p = standard_normal_log_prob(z0) + ladj + self.log_abs_det_standardize()
        return LogProbResult(
            log_prob=log_p,
            stderr=torch.zeros_like(log_p),
            x=z0.reshape(n, *self.shape),
            nfe=len(self.stack),
        )

    def rsample_and_log_prob(
        self, n: int, generator: torch.Generator | None = None
    ) -> LogProbResult:
        """n reparametrized draws x (n, *shape) in data units with their log q(x) (n,).

        log q(x) = log N(z) - log|det ∂f/∂z| - Σ_i log std_i from the forward pass alone
        (no inverse); gradients reach the parameters, as the reverse-KL objective needs.
        """
        n = check_int(n, "the number of samples")
        z = self.noise(n, generator).reshape(n, self.dim)  # (n, D)
        x, ladj = self.stack(z)
        log_q = standard_normal_log_prob(z) - ladj + self.log_abs_det_standardize()
        return LogProbResult(
            log_prob=log_q,
            stderr=torch.zeros_like(log_q),
            x=self.unstandardize(x.reshape(n, *self.shape)),
            nfe=len(self.stack),
        )

    @torch.no_grad()
    def sample_and_log_prob(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
        **ode_options: Any,
    ) -> LogProbResult:
        """n draws x (n, *shape) in data units with their exact log p(x) (n,), one forward pass.

        The samples equal those of :meth:`sample` for the same seed. Records no gradients;
        see :meth:`rsample_and_log_prob` for reparametrized draws.
        """
        _refuse_ode_options("sample_and_log_prob", ode_options)
        _refuse_condition(cond)
        return self.rsample_and_log_prob(n, make_generator(seed, generator))

    # -- the two directions -------------------------------------------------------------------
    @torch.no_grad()
    def trajectory(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
        return_trajectory: bool = True,
        **ode_options: Any,
    ) -> ODESolution:
        """Sample n points by pushing N(0, I) noise through the layers.

        Returns an :class:`ODESolution` with ``x`` (n, *shape) in data units, ``nfe`` = the
        number of layers, and, if asked, ``trajectory`` (L + 1, n, *shape) holding the noise
        and the state after each of the L layers, at ``ts`` = k / L.
        """
        _refuse_ode_options("trajectory", ode_options)
        n = check_int(n, "the number of samples")
        _refuse_condition(cond)
        z = self.noise(n, make_generator(seed, generator)).reshape(n, self.dim)  # (n, D)
        layers = len(self.stack)
        if return_trajectory:
            states = self.stack.states(z)  # (L + 1, n, D)
            traj = self.unstandardize(states.reshape(layers + 1, n, *self.shape))
            ts = torch.linspace(0.0, 1.0, layers + 1)
            return ODESolution(x=traj[-1], nfe=layers, ts=ts, trajectory=traj)
        x, _ = self.stack(z)
        return ODESolution(x=self.unstandardize(x.reshape(n, *self.shape)), nfe=layers)

    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
        **ode_options: Any,
    ) -> Tensor:
        """Draw n samples (n, *shape) in data units; see :meth:`trajectory`."""
        _refuse_ode_options("sample", ode_options)
        return super().sample(n, seed=seed, generator=generator, cond=cond)

    @torch.no_grad()
    def invert(self, x: Tensor, *, cond: Tensor | None = None, **ode_options: Any) -> Tensor:
        """Map data x (N, *shape) back to its noise z_0 = f^{-1}(standardize(x)), (N, *shape)."""
        _refuse_ode_options("invert", ode_options)
        _refuse_condition(cond)
        x = check_points(x, "data", dim=self.dim).to(self.data_mean)
        z = self.standardize(x).reshape(x.shape[0], self.dim)
        return self.stack.inverse(z)[0].reshape(x.shape[0], *self.shape)


def _refuse_condition(cond: Tensor | int | None) -> None:
    """A discrete flow is unconditional: reject any condition."""
    if cond is not None:
        raise FlowmatchError("this flow is unconditional; drop the condition")


def _refuse_ode_options(method: str, options: dict[str, Any]) -> None:
    """Reject keywords no flow takes; warn that ODE options mean nothing to a discrete flow.

    The warning stands for one release, while callers learn to pass ODE options only when
    ``flow.integrates_ode``; then these become errors too.
    """
    unknown = sorted(set(options) - set(ODE_OPTIONS))
    if unknown:
        raise TypeError(f"DiscreteFlowModel.{method}() got unexpected keyword arguments {unknown}")
    if options:
        warnings.warn(
            f"DiscreteFlowModel.{method}() ignores the ODE options {sorted(options)}; pass them "
            "only when flow.integrates_ode (an error from the next release)",
            DeprecationWarning,
            stacklevel=3,
        )
