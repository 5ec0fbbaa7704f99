"""A velocity field with its data standardization: sample, invert and log-density."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from flowmatch.data.logit import LogitTransform
from flowmatch.data.sources import GaussianSource, Source
from flowmatch.errors import FlowmatchError, check_int, check_points
from flowmatch.flows import continuous_density
from flowmatch.flows.base import Flow, make_generator
from flowmatch.likelihood import LogProbResult
from flowmatch.models import VelocityModel, guided_field
from flowmatch.solvers import ODESolution, solve

__all__ = ["FlowModel"]


class FlowModel(Flow):
    """A continuous flow: dx/dt = v(x, t) carries the source p0 at t = 0 to the data at t = 1.

    The velocity network works on standardized data z = (x - mean) / std; this object converts
    to and from the user's units, so everything it returns is in data units. A run on bounded
    data may first map x onto R by a logit transform (``logit``, see
    :class:`~flowmatch.data.logit.LogitTransform`); then z = (logit(x) - mean) / std, and
    log-densities include that transform's log-det too. The source is
    N(0, I) in those standardized units unless another one is given (see
    :mod:`flowmatch.data.sources`); ``invert`` returns points in the source's units.

    A conditional network samples p(x | c) given ``cond`` (class labels, condition vectors,
    images, text prompts or dicts of named parts; see
    :mod:`~flowmatch.models.condition_encoders`), the unconditional p(x) with ``cond=None``
    (its learned null condition), and with ``guidance=w`` the classifier-free guided field
    v_u + w (v_c - v_u).

    It is a :class:`~flowmatch.flows.base.Flow` with ``integrates_ode = True``: every method
    also takes the ODE options (``solver``, ``steps``, ``time_grid``, ``atol``, ``rtol``, and
    for densities ``divergence``, ``probes``, ``probe``).

    Args:
        velocity: the velocity network v(x_t, t, c).
        mean: per-feature mean of the training data, (D,).
        std: per-feature standard deviation of the training data, (D,); for images one value
            repeated for every pixel (see :meth:`~flowmatch.data.Standardizer.fit`).
        source: the distribution at t = 0 (default: N(0, I)).
        logit: an optional logit transform applied before the standardization; mean and std
            are then those of the transformed data.

    Example:
        >>> import torch
        >>> from flowmatch.models import MLPVelocity
        >>> flow = FlowModel(MLPVelocity(2, width=8, depth=1), torch.zeros(2), torch.ones(2))
        >>> flow.sample(4, solver="euler", steps=2, seed=0).shape
        torch.Size([4, 2])
    """

    integrates_ode: ClassVar[bool] = True

    def __init__(
        self,
        velocity: VelocityModel,
        mean: Tensor,
        std: Tensor,
        source: Source | None = None,
        logit: LogitTransform | None = None,
    ) -> None:
        super().__init__(mean, std, logit)
        self.velocity = velocity
        self.source = source if source is not None else GaussianSource()

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one sample, that of the velocity network."""
        return tuple(self.velocity.shape)

    # -- the ODE ------------------------------------------------------------------------------
    def field(
        self, cond: Tensor | None = None, guidance: float | None = None
    ) -> Callable[[Tensor, Tensor], Tensor]:
        """The right-hand side f(t, z) = v(z, t, c) in standardized units, for the solvers.

        With ``guidance=w`` it is the guided field v_u + w (v_c - v_u) (see
        :func:`~flowmatch.models.guided_velocity`).
        """
        if guidance is not None:
            return guided_field(self.velocity, cond, guidance)
        return lambda t, z: self.velocity(z, t, cond)

    def check_condition(self, cond: Tensor | int | None, n: int) -> Tensor | None:
        """Validate conditions for n samples (labels, vectors, or one for all).

        See :meth:`~flowmatch.models.VelocityModel.check_condition`.
        """
        return self.velocity.check_condition(cond, n)

    def flat_field(self, cond: Tensor | None = None) -> Callable[[Tensor, Tensor], Tensor]:
        """f(t, z) = v(z, t, c) on flattened (B, D) states, for the change of variables."""
        shape = self.shape
        return lambda t, z: self.velocity(z.reshape(-1, *shape), t, cond).reshape(z.shape[0], -1)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n samples of the source (N(0, I) by default), standardized, (n, *shape), in the
        flow's device and dtype."""
        return self.source.sample(n, self.shape, generator).to(self.data_mean)

    def transport(
        self,
        z: Tensor,
        t0: float,
        t1: float,
        *,
        cond: Tensor | None = None,
        guidance: float | None = None,
        solver: str = "midpoint",
        steps: int = 50,
        **solve_options: Any,
    ) -> ODESolution:
        """Integrate dz/dt = v(z, t, c) from t0 to t1 in standardized units.

        ``solve_options`` (``time_grid``, ``atol``, ``rtol``, ``return_trajectory``,
        ``trajectory_times``) go to :func:`~flowmatch.solvers.solve`.
        """
        f = self.field(cond, guidance)
        return solve(f, z, t0, t1, solver=solver, steps=steps, **solve_options)

    # -- noise to data --------------------------------------------------------------------------
    @torch.no_grad()
    def trajectory(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
        return_trajectory: bool = True,
        guidance: float | None = None,
        solver: str = "midpoint",
        steps: int = 50,
        time_grid: Tensor | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        trajectory_times: Tensor | None = None,
    ) -> ODESolution:
        """Sample n points by integrating dx/dt = v(x, t, c) from noise (t = 0) to data (t = 1).

        ``cond`` is one condition per sample, or a single one for all (a class label, a
        vector, an image, a prompt such as ``"a thick seven"``, a dict of parts); None samples
        the unconditional model. ``guidance=w`` samples with the guided field
        v_u + w (v_c - v_u); each function evaluation then costs two network calls
        (one batched call of 2n), while the NFE counts function evaluations.

        Args:
            n: the number of samples.
            seed: seed of the noise when no generator is given (None: not reproducible).
            generator: source of the noise.
            cond: the condition, one per sample or one for all.
            return_trajectory: record the states along the way.
            guidance: the classifier-free guidance weight w, or None.
            solver: an ODE solver name (see :data:`~flowmatch.solvers.SOLVERS`).
            steps: steps of a fixed-grid solver.
            time_grid: (T,) step times of a fixed-grid solver from 0 to 1, instead of ``steps``.
            atol: absolute tolerance of an adaptive solver.
            rtol: relative tolerance of an adaptive solver.
            trajectory_times: (T,) times at which an adaptive solver records the states.

        Returns:
            The solver's result with ``x`` (n, *shape) (and ``trajectory`` (T, n, *shape)) in
            data units, ``ts`` and the NFE.
        """
        check_int(n, "the number of samples")
        cond = self.check_condition(cond, n)
        sol = self.transport(
            self.noise(n, make_generator(seed, generator)),
            0.0,
            1.0,
            cond=cond,
            guidance=guidance,
            solver=solver,
            steps=steps,
            time_grid=time_grid,
            atol=atol,
            rtol=rtol,
            return_trajectory=return_trajectory,
            trajectory_times=trajectory_times,
        )
        traj = None if sol.trajectory is None else self.unstandardize(sol.trajectory)
        return ODESolution(x=self.unstandardize(sol.x), nfe=sol.nfe, ts=sol.ts, trajectory=traj)

    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
        guidance: float | None = None,
        solver: str = "midpoint",
        steps: int = 50,
        time_grid: Tensor | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        **deprecated: Any,
    ) -> Tensor:
        """Draw n samples (n, *shape) in data units; see :meth:`trajectory` for the options.

        ``return_log_prob=True`` (deprecated: use :meth:`sample_and_log_prob`) still returns
        the pair ``(x, log_prob)`` for one release, and then takes that method's options.
        """
        options = {"seed": seed, "generator": generator, "cond": cond, "solver": solver}
        options |= {"steps": steps, "time_grid": time_grid, "atol": atol, "rtol": rtol}
        if deprecated.pop("return_log_prob", False):
            warnings.warn(
                "FlowModel.sample(..., return_log_prob=True) is deprecated and will be removed "
                "in the next release; use FlowModel.sample_and_log_prob, which returns a "
                "LogProbResult",
                DeprecationWarning,
                stacklevel=2,
            )
            if guidance is not None:
                raise FlowmatchError("log-densities of a guided field are not available")
            r = self.sample_and_log_prob(n, **options, **deprecated)
            return r.x, r.log_prob  # type: ignore[return-value]  # the deprecated pair
        if deprecated:
            raise TypeError(f"sample() got unexpected keyword arguments {sorted(deprecated)}")
        return self.trajectory(n, **options, guidance=guidance, return_trajectory=False).x

    @torch.no_grad()
    def sample_and_log_prob(
        self,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        cond: Tensor | int | None = None,
        solver: str = "midpoint",
        steps: int = 50,
        time_grid: Tensor | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        divergence: str = "auto",
        probes: int = 4,
        probe: str = "rademacher",
        error_norm: str = "sample",
        divergence_nodes: int = 0,
    ) -> LogProbResult:
        """Sample n points and their log-densities in one pass from noise (t = 0) to data.

        The augmented state (x, int div v dt) is integrated once:
        log p_1(x_1) = log p_0(x_0) - int_0^1 div v_t(x_t) dt, plus the standardization's
        log-det. The noise is drawn first, then any Hutchinson probes, both from the same
        generator; with a fixed-grid solver the samples equal those of :meth:`sample` for the
        same seed.

        Args:
            n: the number of samples.
            seed: seed of the noise (and probes) when no generator is given.
            generator: source of the noise and probes.
            cond: condition of a conditional model, (n, ...) or one for all.
            solver: an ODE solver name.
            steps: steps of a fixed-grid solver.
            time_grid: (T,) step times of a fixed-grid solver from 0 to 1, instead of ``steps``.
            atol: absolute tolerance of an adaptive solver.
            rtol: relative tolerance of an adaptive solver.
            divergence: ``"exact"``, ``"hutchinson"`` or ``"auto"`` (exact for D <= 64,
                ``LOG_PROB_EXACT_MAX_DIM``).
            probes: Hutchinson probes per sample, k.
            probe: Hutchinson probe distribution, ``"rademacher"`` or ``"gaussian"``.
            error_norm: an adaptive solver's error norm, as for :meth:`log_prob_with_stats`.
            divergence_nodes: Gauss-Legendre nodes per step for the divergence, as for
                :meth:`log_prob_with_stats` (0: the augmented ODE).

        Returns:
            A :class:`~flowmatch.likelihood.LogProbResult` with ``x`` the (n, *shape) samples
            in data units and ``log_prob`` (n,) in nats in data units.
        """
        options = {"seed": seed, "generator": generator, "cond": cond, "solver": solver}
        options |= {"steps": steps, "time_grid": time_grid, "atol": atol, "rtol": rtol}
        options |= {"divergence": divergence, "probes": probes, "probe": probe}
        options |= {"error_norm": error_norm, "divergence_nodes": divergence_nodes}
        return continuous_density.sample_and_log_prob(self, n, **options)

    # -- data to noise --------------------------------------------------------------------------
    def log_prob(self, x: Tensor, *, cond: Tensor | None = None, **options: Any) -> Tensor:
        """log p(x) in nats, in data units, of points x (N, *shape); returns (N,).

        Takes the options of :meth:`log_prob_with_stats` (solver, tolerances, divergence,
        probes, seed, batch size), which also gives the standard errors.
        """
        return self.log_prob_with_stats(x, cond=cond, **options).log_prob

    @torch.no_grad()
    def log_prob_with_stats(
        self,
        x: Tensor,
        *,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        cond: Tensor | None = None,
        batch_size: int | None = None,
        solver: str = "dopri5",
        steps: int = 50,
        time_grid: Tensor | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
        divergence: str = "auto",
        probes: int = 4,
        probe: str = "rademacher",
        error_norm: str = "sample",
        divergence_nodes: int = 0,
    ) -> LogProbResult:
        """Log-densities of data by integrating (x, int div v dt) from t = 1 back to t = 0.

        log p(x) = log N(z_0; 0, I) + int_1^0 div v_t(z_t) dt - sum_j log std_j, where
        z_1 = (x - mean) / std; the last term is the standardization's log-det (plus the logit
        transform's at x, if the run has one), so the result is in nats in the units of ``x``.
        The divergence is exact (the Jacobian's trace, vectorized with ``torch.func``) or
        Hutchinson's estimate with k probes per point, fixed along each trajectory and seeded,
        whose spread gives a per-point standard error.

        Args:
            x: (N, *shape) or (N, D) points in data units.
            seed: seed of the probes when no generator is given (None: not reproducible).
            generator: source of the probes.
            cond: condition of a conditional model, (N, ...).
            batch_size: points per solve (all at once if None), to bound memory.
            solver: an ODE solver name; the adaptive default keeps the solver's error well
                below the model's.
            steps: steps of a fixed-grid solver.
            time_grid: (T,) step times of a fixed-grid solver from 1 to 0, instead of ``steps``.
            atol: absolute tolerance of an adaptive solver.
            rtol: relative tolerance of an adaptive solver.
            divergence: ``"exact"``, ``"hutchinson"`` or ``"auto"`` (exact for D <= 64,
                ``LOG_PROB_EXACT_MAX_DIM``).
            probes: Hutchinson probes per point, k (>= 2 to get a standard error).
            probe: Hutchinson probe distribution, ``"rademacher"`` or ``"gaussian"``.
            error_norm: how an adaptive solver measures its error: ``"sample"`` (the
                default) holds every point's x and log-density to the tolerance on every
                step; ``"batch"``, the RMS over the whole batch, lets single points exceed it.
            divergence_nodes: n > 0 evaluates the divergence only at n Gauss-Legendre nodes
                per step of a fixed-grid solver, which integrates x alone (see
                :func:`~flowmatch.likelihood.integrate_divergence`); 0 solves the augmented
                ODE.

        Returns:
            A :class:`~flowmatch.likelihood.LogProbResult`: ``log_prob`` (N,), ``stderr`` (N,)
            (zeros if exact, None for one probe), ``x`` the noise z_0 (N, *shape), and ``nfe``
            summed over the batches.

        References:
            Chen et al., "Neural Ordinary Differential Equations" (2018); Grathwohl et al.,
            "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models"
            (2019).
        """
        options = {"seed": seed, "generator": generator, "cond": cond, "solver": solver}
        options |= {"steps": steps, "time_grid": time_grid, "atol": atol, "rtol": rtol}
        options |= {"divergence": divergence, "probes": probes, "probe": probe}
        options |= {"error_norm": error_norm, "divergence_nodes": divergence_nodes}
        return continuous_density.log_prob_with_stats(self, x, batch_size=batch_size, **options)

    @torch.no_grad()
    def invert(
        self,
        x: Tensor,
        *,
        cond: Tensor | None = None,
        solver: str = "midpoint",
        steps: int = 50,
        time_grid: Tensor | None = None,
        atol: float = 1e-5,
        rtol: float = 1e-5,
    ) -> Tensor:
        """Map data x (N, *shape) back to its source point x_0 by integrating from t = 1 to 0.

        Returns N(0, I) noise for the default source, else points in the source's units. A
        ``time_grid`` runs from 1 to 0.
        """
        x = check_points(x.to(self.device), "data", dim=self.dim).reshape(-1, *self.shape)
        cond = self.check_condition(cond, x.shape[0])
        sol = self.transport(
            self.standardize(x),
            1.0,
            0.0,
            cond=cond,
            solver=solver,
            steps=steps,
            time_grid=time_grid,
            atol=atol,
            rtol=rtol,
        )
        return self.source.unstandardize(sol.x)
