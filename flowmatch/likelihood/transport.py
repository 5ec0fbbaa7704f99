"""The transport (continuity) equation, checked on the log-densities a flow computes.

A field v_t that carries p_0 = N(0, I) (t = 0) along dx/dt = v_t(x) makes the densities p_t
obey the transport equation of section 3 of the theory text,

    ∂p_t/∂t + div(p_t v_t) = 0,

or, divided by p_t > 0,

    ∂/∂t log p_t(x) + div v_t(x) + v_t(x) · ∇_x log p_t(x) = 0.

:func:`log_density_at` computes log p_t(x) at any (x, t) with the library's own change of
variables (the augmented ODE from t back to 0); :func:`continuity_residual` differentiates it
by central differences in t and x and returns the left-hand side with its three terms, so the
residual can be judged against their size. For the field that generated the densities the
residual is the finite-difference error, O(h^2); for any other field it is not small.

Example:
    >>> import torch
    >>> # v = -x/2 contracts N(0, I) into p_t = N(0, e^{-t} I)
    >>> f = lambda t, x: -0.5 * x
    >>> x = torch.tensor([[0.3, -1.2], [1.0, 0.5]], dtype=torch.float64)
    >>> r = continuity_residual(f, x, t=0.5, h=1e-3)
    >>> bool((r.relative < 1e-6).all())
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.data.sources import standard_normal_log_prob
from flowmatch.errors import FlowmatchError, check_points
from flowmatch.likelihood.change_of_variables import FlatField, LogDensity, integrate_divergence
from flowmatch.likelihood.divergence import ExactDivergence, exact_divergence

__all__ = ["ContinuityResidual", "continuity_residual", "log_density_at"]

TIGHT = {"solver": "dopri5", "atol": 1e-10, "rtol": 1e-10}
"""Default solve options: tight enough in float64 that finite differences of the result,
which divide its error by h, stay well below their own O(h^2) error."""


def log_density_at(
    f: FlatField,
    x: Tensor,
    t: float,
    *,
    log_p0: LogDensity = standard_normal_log_prob,
    **solve_options,
) -> Tensor:
    """log p_t(x) of the density the flow dx/dt = f(t, x) carries p_0 to at time t.

    With x_s the trajectory through x at time s = t, integrated back to s = 0,

        log p_t(x) = log p_0(x_0) - int_0^t div v_s(x_s) ds,

    the instantaneous change of variables of :mod:`~flowmatch.likelihood.change_of_variables`
    stopped at t instead of 1 (the divergence is exact: this is for small D).

    Args:
        f: the velocity field on flat (B, D) states, ``f(t, x)`` with t a 0-dim tensor.
        x: (B, D) points.
        t: the time; t = 0 gives log p_0(x), t = 1 the flow's log p(x).
        log_p0: the source's log-density (default N(0, I)).
        solve_options: options of :func:`~flowmatch.solvers.solve` (default: dopri5 with
            atol = rtol = 1e-10).

    Returns:
        (B,) log p_t(x) in nats.

    Example:
        >>> # v = x doubles the standard deviation every log 2: p_t = N(0, e^{2t} I)
        >>> x = torch.zeros(1, 2, dtype=torch.float64)
        >>> lp = log_density_at(lambda t, x: x, x, 0.5)
        >>> round(lp.item(), 8), round(-math.log(2 * math.pi) - 1.0, 8)
        (-2.83787707, -2.83787707)
    """
    x = check_points(x, "x")
    if not math.isfinite(t):
        raise FlowmatchError(f"t must be a finite time, got {t!r}")
    if t == 0.0:
        return log_p0(x)
    options = TIGHT | solve_options
    sol = integrate_divergence(f, x, float(t), 0.0, ExactDivergence(), **options)
    return log_p0(sol.x) + sol.div_integral[:, 0]  # int_t^0 div = -int_0^t div


@dataclass
class ContinuityResidual:
    """The transport equation divided by p_t, term by term, at points (x, t).

    Attributes:
        residual: (B,) ∂_t log p_t + div v_t + v_t · ∇ log p_t (zero for an exact transport).
        dlogp_dt: (B,) ∂_t log p_t(x) by central differences in t.
        divergence: (B,) div v_t(x), exact.
        advection: (B,) v_t(x) · ∇_x log p_t(x), the gradient by central differences in x.
        h: the finite-difference step.
    """

    residual: Tensor
    dlogp_dt: Tensor
    divergence: Tensor
    advection: Tensor
    h: float

    @property
    def scale(self) -> Tensor:
        """(B,) |∂_t log p| + |div v| + |v · ∇ log p|, the size of the terms that cancel."""
        return self.dlogp_dt.abs() + self.divergence.abs() + self.advection.abs()

    @property
    def relative(self) -> Tensor:
        """(B,) |residual| / scale."""
        return self.residual.abs() / self.scale


def continuity_residual(
    f: FlatField,
    x: Tensor,
    t: float,
    h: float,
    *,
    density_field: FlatField | None = None,
    log_p0: LogDensity = standard_normal_log_prob,
    **solve_options,
) -> ContinuityResidual:
    """The residual of ∂_t log p_t + div v_t + v_t · ∇ log p_t = 0 at points x and time t.

    log p_t comes from :func:`log_density_at` (the library's change of variables) for the
    field ``density_field`` (default ``f``); v_t and div v_t are those of ``f``, exactly.
    Both derivatives of log p_t are central differences with step h, so with a field smooth
    on the scale h the residual of the field that made the densities is O(h^2), plus the
    solver's error divided by h. The step must resolve the field's time scale: a default
    :class:`~flowmatch.models.MLPVelocity` feeds time frequencies up to 1000.

    Costs three solves of the augmented ODE: at t + h, at t - h, and at t for the 2 D
    shifted copies of x.

    Args:
        f: the velocity field v(t, x) on flat (B, D) states.
        x: (B, D) points.
        t: the time.
        h: the finite-difference step, > 0.
        density_field: the field whose densities are checked (default ``f``); passing another
            one tests whether ``f`` transports them.
        log_p0: the source's log-density (default N(0, I)).
        solve_options: options of :func:`~flowmatch.solvers.solve` for
            :func:`log_density_at` (default: dopri5 with atol = rtol = 1e-10).

    Returns:
        The :class:`ContinuityResidual`, with ``relative`` = |residual| / scale.

    References:
        Chen et al., "Neural Ordinary Differential Equations" (2018), theorem 1;
        Lipman et al., "Flow Matching for Generative Modeling" (2023), section 2 (the
        continuity equation).
    """
    x = check_points(x, "x")
    if not (isinstance(h, float | int) and math.isfinite(h) and h > 0):
        raise FlowmatchError(f"the finite-difference step h must be a number > 0, got {h!r}")
    if not math.isfinite(t):
        raise FlowmatchError(f"t must be a finite time, got {t!r}")
    g = f if density_field is None else density_field
    n, d = x.shape
    kw = {"log_p0": log_p0, **solve_options}

    later = log_density_at(g, x, t + h, **kw)  # (B,)
    earlier = log_density_at(g, x, t - h, **kw)
    dlogp_dt = (later - earlier) / (2 * h)

    shifts = h * torch.eye(d, dtype=x.dtype, device=x.device)  # (D, D)
    stencil = torch.cat([x[None] + shifts[:, None], x[None] - shifts[:, None]])  # (2D, B, D)
    lp = log_density_at(g, stencil.reshape(2 * d * n, d), t, **kw).reshape(2, d, n)
    grad = ((lp[0] - lp[1]) / (2 * h)).T  # (B, D)

    v, div = exact_divergence(lambda y: f(x.new_tensor(t), y), x)  # (B, D), (B,)
    advection = (v * grad).sum(dim=1)
    return ContinuityResidual(
        residual=dlogp_dt + div + advection,
        dlogp_dt=dlogp_dt,
        divergence=div,
        advection=advection,
        h=float(h),
    )
