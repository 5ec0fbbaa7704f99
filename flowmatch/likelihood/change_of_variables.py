"""Exact log-densities of a flow by the instantaneous change of variables.

Along a trajectory of dx/dt = v_t(x), the log-density obeys d/dt log p_t(x_t) = -div v_t(x_t).
Integrating the augmented state (x_t, a_t) with da/dt = div v_t(x_t) and a = 0 at the start
gives, with t = 0 noise N(0, I) and t = 1 data,

    log p_1(x_1) = log p_0(x_0) - int_0^1 div v_t(x_t) dt,

whichever direction the ODE is solved in: from data to noise to evaluate a density
(:func:`log_prob`), or from noise to data to sample and score in one pass
(:func:`sample_log_prob`).

References:
    Chen et al., "Neural Ordinary Differential Equations" (2018);
    Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible
    Generative Models" (2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from flowmatch.data.sources import standard_normal_log_prob
from flowmatch.errors import FlowmatchError, check_int, lookup
from flowmatch.likelihood.divergence import Divergence
from flowmatch.solvers import SOLVERS, grouped_sample_norm, solve

__all__ = [
    "AugmentedSolution",
    "LogProbResult",
    "gauss_legendre",
    "integrate_divergence",
    "log_prob",
    "sample_log_prob",
    "standard_normal_log_prob",
]


FlatField = Callable[[Tensor, Tensor], Tensor]
"""``f(t, x) -> v`` with t a 0-dim tensor and x, v of shape (B, D), rows independent."""

LogDensity = Callable[[Tensor], Tensor]
"""``log_p0(z) -> (B,)`` for z (B, D): the log-density of the source at t = 0."""


@dataclass
class AugmentedSolution:
    """The end of a solve of the augmented state (x, int div v dt [, int ||v||^2 dt]).

    Attributes:
        x: (B, D) state at t1.
        div_integral: (B, m) int_{t0}^{t1} div v_t(x_t) dt, one column per estimate (a signed
            integral: negative of the forward one when t1 < t0).
        kinetic: (B,) int ||v_t(x_t)||^2 |dt| over the interval (non-negative), or None.
        nfe: velocity evaluations of the solve.
    """

    x: Tensor
    div_integral: Tensor
    kinetic: Tensor | None
    nfe: int


def integrate_divergence(
    f: FlatField,
    x: Tensor,
    t0: float,
    t1: float,
    divergence: Divergence,
    *,
    kinetic: bool = False,
    divergence_nodes: int = 0,
    **solve_options,
) -> AugmentedSolution:
    """Solve d/dt (x, a, k) = (v_t(x), div v_t(x), ||v_t(x)||^2) from (x, 0, 0) at t0 to t1.

    Two ways, the same integral:

    - ``divergence_nodes=0``: the augmented state is one ODE, so the divergence is evaluated
      at every stage of the solver (what adaptive solvers need).
    - ``divergence_nodes=n``: x alone is integrated by a fixed-grid solver, and the
      divergence integral of each step of its grid (a "panel") is the n-point Gauss-Legendre
      rule, exact for polynomials of degree 2n - 1 in t, whose nodes are added to the grid so
      that x is known there. The divergence (D vector products) is then evaluated only at the
      n nodes of each panel while the velocity alone is evaluated at the solver's stages.
      Where D is large the divergence is most of the cost, so this is much cheaper than the
      augmented ODE at the same accuracy.

    Args:
        f: the velocity field on flat (B, D) states.
        x: (B, D) state at ``t0``.
        t0: start time.
        t1: end time.
        divergence: the estimator of div v (exact, or Hutchinson with its probes).
        kinetic: also integrate the kinetic energy ||v||^2 (RNODE's regularizer).
        divergence_nodes: Gauss-Legendre nodes per panel, or 0 for the augmented ODE.
        solve_options: ``solver``, ``steps``, ``time_grid``, ``atol``, ``rtol``,
            ``error_norm`` of :func:`~flowmatch.solvers.solve`. The state the adaptive
            solvers control the error of includes the accumulated divergence;
            ``error_norm="sample"`` takes, for each point, the larger of the RMS error of x
            and the error of each accumulated column, so the log-density itself meets the
            tolerance at every point.

    Returns:
        The :class:`AugmentedSolution`; its ``nfe`` counts velocity evaluations, those that
        also give the divergence included.

    References:
        Davis & Rabinowitz, "Methods of Numerical Integration" (1984), for Gauss-Legendre.
    """
    d, m = x.shape[1], divergence.columns
    check_int(divergence_nodes, "divergence_nodes", minimum=0)
    if divergence_nodes:
        return _integrate_by_quadrature(
            f, x, t0, t1, divergence, kinetic, divergence_nodes, solve_options
        )

    def augmented(t: Tensor, state: Tensor) -> Tensor:
        v, div = divergence(lambda y: f(t, y), state[:, :d])  # (B, D), (B, m)
        parts = [v, div]
        if kinetic:
            parts.append(v.square().sum(dim=1, keepdim=True))  # (B, 1)
        return torch.cat(parts, dim=1)

    extra = m + int(kinetic)
    if solve_options.get("error_norm") == "sample":  # x, then each accumulator on its own
        solve_options = solve_options | {"error_norm": grouped_sample_norm((d,) + (1,) * extra)}
    state0 = torch.cat([x, x.new_zeros(x.shape[0], extra)], dim=1)  # (B, D + m [+ 1])
    sol = solve(augmented, state0, t0, t1, **solve_options)
    end = sol.x
    energy = end[:, d + m].abs() if kinetic else None  # the integral has the sign of t1 - t0
    return AugmentedSolution(
        x=end[:, :d], div_integral=end[:, d : d + m], kinetic=energy, nfe=sol.nfe
    )


def gauss_legendre(n: int) -> tuple[Tensor, Tensor]:
    """The n-point Gauss-Legendre rule on [0, 1]: (n,) nodes in increasing order and weights.

    Example:
        >>> s, w = gauss_legendre(2)
        >>> [round(v, 6) for v in s.tolist()], w.tolist()
        ([0.211325, 0.788675], [0.5, 0.5])
    """
    xi, wi = np.polynomial.legendre.leggauss(n)  # on [-1, 1], increasing
    return torch.from_numpy((xi + 1.0) / 2.0), torch.from_numpy(wi / 2.0)


def _integrate_by_quadrature(
    f: FlatField,
    x: Tensor,
    t0: float,
    t1: float,
    divergence: Divergence,
    kinetic: bool,
    nodes: int,
    solve_options: dict,
) -> AugmentedSolution:
    """x by a fixed-grid solve through the Gauss-Legendre nodes of every panel; the divergence
    (and ||v||^2) integrated by the rule; see :func:`integrate_divergence`."""
    name = solve_options.get("solver", "euler")
    if lookup(SOLVERS, name, "solver").adaptive:
        raise FlowmatchError(
            f"divergence_nodes needs a fixed-grid solver for x, got the adaptive {name!r}; "
            "pick one of " + ", ".join(n for n, s in SOLVERS.items() if not s.adaptive)
        )
    grid = solve_options.get("time_grid")
    if grid is None:
        steps = check_int(solve_options.get("steps", 100), "steps")
        panels = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)  # (K + 1,)
    else:
        panels = grid.detach().to("cpu", torch.float64)
    s, w = gauss_legendre(nodes)  # (n,) on [0, 1]
    h = panels.diff()  # (K,) signed widths
    inner = panels[:-1, None] + h[:, None] * s  # (K, n) node times, in the solve's direction
    refined = torch.cat([torch.cat([panels[:-1, None], inner], dim=1).reshape(-1), panels[-1:]])
    options = {k: v for k, v in solve_options.items() if k not in ("steps", "time_grid")}
    options.pop("error_norm", None)
    sol = solve(f, x, t0, t1, time_grid=refined.to(x.dtype), return_trajectory=True, **options)
    traj = sol.trajectory  # (K (n + 1) + 1, B, D)

    weights = (h[:, None] * w).reshape(-1).tolist()  # (K n,) signed, as dt
    times = inner.reshape(-1).to(x.device, x.dtype)
    index = [k * (nodes + 1) + 1 + j for k in range(len(h)) for j in range(nodes)]
    div_integral = x.new_zeros(x.shape[0], divergence.columns)  # (B, m)
    energy = x.new_zeros(x.shape[0]) if kinetic else None
    for t, i, wt in zip(times.unbind(), index, weights, strict=True):
        v, div = divergence(lambda y, t=t: f(t, y), traj[i])  # (B, D), (B, m)
        div_integral = div_integral + wt * div
        if energy is not None:
            energy = energy + abs(wt) * v.square().sum(dim=1)
    return AugmentedSolution(
        x=sol.x, div_integral=div_integral, kinetic=energy, nfe=sol.nfe + len(index)
    )


@dataclass
class LogProbResult:
    """Log-densities of points at the data end (t = 1) of a flow.

    Attributes:
        log_prob: (B,) log p_1 in nats, averaged over the Hutchinson estimates if any.
        stderr: (B,) standard error of ``log_prob`` from the spread of the k independent
            Hutchinson estimates (std / sqrt(k)); zeros when the divergence is exact; None
            for a single probe, whose error cannot be estimated from itself.
        x: (B, D) the other end of the trajectory: the noise x_0 of :func:`log_prob`, the
            sample x_1 of :func:`sample_log_prob`.
        nfe: velocity evaluations of the solve (each with its divergence).
        kinetic: (B,) int_0^1 ||v_t(x_t)||^2 dt if it was requested, else None.
    """

    log_prob: Tensor
    stderr: Tensor | None
    x: Tensor
    nfe: int
    kinetic: Tensor | None = None


def _combine(
    log_p0: Tensor, div_integral: Tensor, divergence: Divergence
) -> tuple[Tensor, Tensor | None]:
    """Average the k columns of log p_0 - int_0^1 div; their std / sqrt(k) is the stderr."""
    estimates = log_p0[:, None] - div_integral  # (B, k)
    k = estimates.shape[1]
    if divergence.exact:
        return estimates[:, 0], torch.zeros_like(log_p0)
    if k < 2:
        return estimates[:, 0], None
    return estimates.mean(dim=1), estimates.std(dim=1) / math.sqrt(k)


def _solve_log_prob(
    f: FlatField,
    x_start: Tensor,
    t_start: float,
    divergence: Divergence,
    kinetic: bool,
    log_p0: LogDensity,
    solve_options: dict,
) -> LogProbResult:
    """Solve the augmented state from ``t_start`` (0 or 1) to the other end, then score.

    Whichever way the solve runs, log p_1(x_1) = log p_0(x_0) - int_0^1 div v_t(x_t) dt, where
    int_0^1 div = s * a with a the signed integral the solve accumulated and
    s = +1 forward (t_start = 0), -1 backward (t_start = 1). ``x`` of the result is the end
    that was not given: the noise x_0 of a backward solve, the sample x_1 of a forward one.
    """
    t_end = 1.0 - t_start
    sol = integrate_divergence(
        f, x_start, t_start, t_end, divergence, kinetic=kinetic, **solve_options
    )
    x0 = x_start if t_start == 0.0 else sol.x  # (B, D) the noise end
    forward_integral = sol.div_integral if t_start == 0.0 else -sol.div_integral  # (B, m)
    lp, se = _combine(log_p0(x0), forward_integral, divergence)
    return LogProbResult(log_prob=lp, stderr=se, x=sol.x, nfe=sol.nfe, kinetic=sol.kinetic)


def log_prob(
    f: FlatField,
    x1: Tensor,
    divergence: Divergence,
    *,
    kinetic: bool = False,
    log_p0: LogDensity = standard_normal_log_prob,
    **solve_options,
) -> LogProbResult:
    """log p_1(x_1) of data points by integrating from t = 1 back to t = 0.

    log p_1(x_1) = log p_0(x_0) + int_1^0 div v_t(x_t) dt, with p_0 = N(0, I) by default.

    Args:
        f: the velocity field on flat (B, D) states.
        x1: (B, D) data points.
        divergence: the estimator of div v, built for ``x1``'s batch.
        kinetic: also return int_0^1 ||v||^2 dt along each trajectory.
        log_p0: the source's log-density (default N(0, I)).
        solve_options: see :func:`integrate_divergence`.

    Returns:
        The :class:`LogProbResult`; ``x`` is the noise x_0.

    Example:
        >>> from flowmatch.likelihood.divergence import ExactDivergence
        >>> # v = x doubles volumes at rate D = 2: x_1 = e x_0, p_1 = N(0, e^2 I)
        >>> r = log_prob(lambda t, x: x, torch.zeros(1, 2), ExactDivergence(), solver="rk4")
        >>> round(r.log_prob.item(), 4), round(-math.log(2 * math.pi) - 2.0, 4)
        (-3.8379, -3.8379)
    """
    return _solve_log_prob(f, x1, 1.0, divergence, kinetic, log_p0, solve_options)


def sample_log_prob(
    f: FlatField,
    x0: Tensor,
    divergence: Divergence,
    *,
    kinetic: bool = False,
    log_p0: LogDensity = standard_normal_log_prob,
    **solve_options,
) -> LogProbResult:
    """Carry noise x_0 to samples x_1 and return log p_1(x_1) from the same solve.

    log p_1(x_1) = log p_0(x_0) - int_0^1 div v_t(x_t) dt.

    Args:
        f: the velocity field on flat (B, D) states.
        x0: (B, D) draws of N(0, I).
        divergence: the estimator of div v, built for ``x0``'s batch.
        kinetic: also return int_0^1 ||v||^2 dt along each trajectory.
        log_p0: the source's log-density (default N(0, I)).
        solve_options: see :func:`integrate_divergence`.

    Returns:
        The :class:`LogProbResult`; ``x`` is the sample x_1.
    """
    return _solve_log_prob(f, x0, 0.0, divergence, kinetic, log_p0, solve_options)
