"""The interface every flow implements: sample, invert, log-density and trajectory."""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from flowmatch.data.logit import LogitTransform
from flowmatch.likelihood import LogProbResult
from flowmatch.solvers import ODESolution

__all__ = ["ODE_OPTIONS", "Flow", "make_generator"]

ODE_OPTIONS: tuple[str, ...] = (
    "solver",
    "steps",
    "atol",
    "rtol",
    "time_grid",
    "divergence",
    "probes",
    "probe",
    "trajectory_times",
    "error_norm",
    "divergence_nodes",
)
"""Keyword options that only a flow integrating an ODE takes (``Flow.integrates_ode``)."""


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    """The generator given, else a new one seeded with ``seed`` (None: not reproducible)."""
    if generator is not None or seed is None:
        return generator
    return torch.Generator().manual_seed(seed)


class Flow(nn.Module, ABC):
    """An invertible map x_1 = φ(x_0) carrying a source p_0 (t = 0, noise) to data (t = 1).

    Every flow of the package, continuous (:class:`~flowmatch.flows.continuous.FlowModel`,
    an ODE dx/dt = v(x, t)) or discrete (:class:`~flowmatch.flows.discrete.DiscreteFlowModel`,
    a stack of layers), answers the same calls, in data units, with one return type each:

    - :meth:`sample` -> (n, *shape) samples;
    - :meth:`trajectory` -> an :class:`~flowmatch.solvers.ODESolution` (states from t = 0 to 1,
      and the NFE: velocity evaluations, or layers of a discrete flow);
    - :meth:`sample_and_log_prob` -> a :class:`~flowmatch.likelihood.LogProbResult` of
      samples with their log-densities, from one pass;
    - :meth:`log_prob` -> (N,) log p(x) in nats; :meth:`log_prob_with_stats` -> the same with
      standard errors, the noise x_0 and the NFE, as a ``LogProbResult``;
    - :meth:`invert` -> the source points x_0 = φ^{-1}(x).

    The shared keyword set is ``seed``, ``generator`` and ``cond`` (where a method draws or
    conditions). A flow with ``integrates_ode = True`` also takes the options of
    :data:`ODE_OPTIONS` (solver, steps, tolerances, time grid, divergence estimator); callers
    check this class attribute and pass them only then. None of these methods records
    gradients; a discrete flow offers a reparametrized draw for training
    (:meth:`~flowmatch.flows.discrete.DiscreteFlowModel.rsample_and_log_prob`).

    Densities follow the change of variables, log p_1(x_1) = log p_0(x_0) - log|det ∂φ/∂x_0|,
    where for an ODE log|det ∂φ/∂x_0| = int_0^1 div v_t(x_t) dt.

    The map works on standardized data z = (x - mean) / std (after a logit transform, for a
    run on bounded data); the base class holds those statistics as buffers and converts, so
    every method takes and returns data units.

    Args:
        mean: per-feature mean of the (transformed) training data, (D,).
        std: per-feature standard deviation, (D,).
        logit: an optional logit transform applied before the standardization.

    Attributes:
        integrates_ode: whether the map is the solution of an ODE, so that the options of
            :data:`ODE_OPTIONS` apply.

    References:
        Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference"
        (JMLR 2021).
    """

    integrates_ode: ClassVar[bool]

    def __init__(self, mean: Tensor, std: Tensor, logit: LogitTransform | None = None) -> None:
        super().__init__()
        self.logit = logit
        self.register_buffer("data_mean", mean.detach().clone().float().reshape(-1))
        self.register_buffer("data_std", std.detach().clone().float().reshape(-1))

    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. (2,) or (C, H, W)."""

    @property
    def dim(self) -> int:
        """D = prod(shape), the number of features of one sample."""
        return math.prod(self.shape)

    @property
    def device(self) -> torch.device:
        """The device of the buffers (and, once moved with the module, the parameters)."""
        return self.data_mean.device

    # -- units ------------------------------------------------------------------------------
    def standardize(self, x: Tensor) -> Tensor:
        """z = (x - mean) / std for x (..., *shape), after the logit transform if any."""
        if self.logit is not None:
            x = self.logit.forward(x)
        return (x - self.data_mean.reshape(self.shape)) / self.data_std.reshape(self.shape)

    def unstandardize(self, z: Tensor) -> Tensor:
        """x = z * std + mean for z (..., *shape), then the inverse logit transform if any."""
        x = z * self.data_std.reshape(self.shape) + self.data_mean.reshape(self.shape)
        return x if self.logit is None else self.logit.inverse(x)

    def log_abs_det_standardize(self) -> Tensor:
        """log |det dz/dx| = -sum_j log std_j of z = (x - mean) / std, a scalar.

        Densities convert as log p_x(x) = log p_z(z) + this, so log-densities come out in the
        data's own units.
        """
        return -torch.log(self.data_std).sum()

    def log_abs_det_to_z(self, x: Tensor) -> Tensor:
        """log |det dz/dx| at data points x (N, ...): the standardization's log-det plus, with
        a logit transform, its log-det at each point; (N,) or a scalar without one."""
        ladj = self.log_abs_det_standardize()
        return ladj if self.logit is None else ladj + self.logit.log_abs_det(x)

    @abstractmethod
    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws x_0 of the source in the units the map starts from, (n, *shape)."""

    @abstractmethod
    def trajectory(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
        return_trajectory: bool = True,
    ) -> ODESolution:
        """Sample n points from noise (t = 0) to data (t = 1), keeping the states on the way.

        Args:
            n: the number of samples.
            seed: seed of the noise when no generator is given (None: not reproducible).
            generator: source of the noise.
            cond: the condition of a conditional flow, one per sample or one for all.
            return_trajectory: record the states (False: only ``x`` and ``nfe``).

        Returns:
            ``x`` (n, *shape) in data units, ``nfe``, and if recorded ``ts`` (T,) and
            ``trajectory`` (T, n, *shape).
        """

    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
    ) -> Tensor:
        """Draw n samples x_1 = φ(x_0), x_0 ~ p_0, in data units, (n, *shape).

        The same seed gives the same samples as :meth:`trajectory` and
        :meth:`sample_and_log_prob`.
        """
        return self.trajectory(
            n, seed=seed, generator=generator, cond=cond, return_trajectory=False
        ).x

    @abstractmethod
    def sample_and_log_prob(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
    ) -> LogProbResult:
        """Draw n samples with their log-densities from one pass, noise to data.

        Returns:
            A :class:`~flowmatch.likelihood.LogProbResult` with ``x`` (n, *shape) the samples
            in data units, ``log_prob`` (n,) in nats, ``stderr`` and ``nfe``.
        """

    def log_prob(self, x: Tensor, *, cond: Tensor | None = None) -> Tensor:
        """log p(x) in nats, in data units, of points x (N, *shape); returns (N,).

        See :meth:`log_prob_with_stats` for the standard errors and the noise.
        """
        return self.log_prob_with_stats(x, cond=cond).log_prob

    @abstractmethod
    def log_prob_with_stats(
        self,
        x: Tensor,
        *,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        cond: Tensor | None = None,
        batch_size: int | None = None,
    ) -> LogProbResult:
        """log p(x) = log p_0(φ^{-1}(x)) + log|det ∂φ^{-1}/∂x| of data x (N, *shape).

        Args:
            x: (N, *shape) or (N, D) points in data units.
            seed: seed of any randomness of the estimate when no generator is given.
            generator: source of that randomness.
            cond: the condition of a conditional flow, (N, ...).
            batch_size: points per pass (all at once if None), to bound memory.

        Returns:
            A :class:`~flowmatch.likelihood.LogProbResult`: ``log_prob`` (N,) in nats,
            ``stderr`` (N,) (zeros when exact), ``x`` the source points x_0 (N, *shape) and
            ``nfe``.
        """

    @abstractmethod
    def invert(self, x: Tensor, *, cond: Tensor | None = None) -> Tensor:
        """Map data x (N, *shape) back to its source point x_0 = φ^{-1}(x), (N, *shape)."""

    # -- deprecated names, kept for one release ----------------------------------------------
    def sample_trajectory(self, n: int, **options: Any) -> ODESolution:
        """Deprecated alias of :meth:`trajectory`."""
        _deprecated("sample_trajectory", "trajectory")
        return self.trajectory(n, **options)

    def sample_with_log_prob(self, n: int, **options: Any) -> LogProbResult:
        """Deprecated alias of :meth:`sample_and_log_prob`."""
        _deprecated("sample_with_log_prob", "sample_and_log_prob")
        return self.sample_and_log_prob(n, **options)


def _deprecated(old: str, new: str) -> None:
    """Warn that ``Flow.old`` is deprecated in favour of ``Flow.new``."""
    warnings.warn(
        f"Flow.{old} is deprecated and will be removed in the next release; use Flow.{new}",
        DeprecationWarning,
        stacklevel=3,
    )
