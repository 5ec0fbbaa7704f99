"""The one entry point for ODE integration: check the options, pick the solver, run it."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_finite, check_int, lookup
from flowmatch.solvers.base import ODESolution, VelocityField
from flowmatch.solvers.norms import ERROR_NORMS, ErrorNorm
from flowmatch.solvers.registry import SOLVERS

__all__ = ["DEFAULT_TRAJECTORY_POINTS", "solve"]

DEFAULT_TRAJECTORY_POINTS = 11
"""How many evenly spaced times an adaptive solve records when no times are given."""


def solve(
    f: VelocityField,
    x0: Tensor,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    solver: str = "euler",
    steps: int = 100,
    time_grid: Tensor | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    return_trajectory: bool = False,
    trajectory_times: Tensor | None = None,
    error_norm: str | ErrorNorm = "batch",
) -> ODESolution:
    """Integrate dx/dt = f(t, x) from x(t0) = x0 to t1.

    With t = 0 noise and t = 1 data, t0 = 0, t1 = 1 samples and t0 = 1, t1 = 0 maps data back to
    noise; any t1 < t0 integrates backward. The solve runs under the caller's grad mode, so
    it can be backpropagated through (fixed and adaptive solvers alike).

    Args:
        f: velocity field ``f(t, x) -> dx/dt`` where ``t`` is a 0-dim tensor with ``x``'s
            dtype and device and ``x`` has the shape of ``x0``.
        x0: (B, ...) floating-point initial state, e.g. (B, D) samples or (B, D + 1) states
            augmented with a log-determinant.
        t0: start time.
        t1: end time, different from ``t0``.
        solver: a name in :data:`~flowmatch.solvers.SOLVERS`.
        steps: number of uniform steps of a fixed-grid solver (ignored with ``time_grid``
            and by adaptive solvers), at least 1.
        time_grid: (T,) strictly monotone step times of a fixed-grid solver, from ``t0`` to
            ``t1``, for non-uniform schedules.
        atol: absolute tolerance of an adaptive solver, > 0.
        rtol: relative tolerance of an adaptive solver, > 0.
        return_trajectory: also return the states along the way: at the grid times for a
            fixed-grid solver, at ``trajectory_times`` for an adaptive one.
        trajectory_times: (T,) strictly monotone times from ``t0`` to ``t1`` at which an
            adaptive solver records the trajectory (implies ``return_trajectory``); defaults
            to 11 evenly spaced times.
        error_norm: how an adaptive solver measures a step's error: a name in
            :data:`~flowmatch.solvers.norms.ERROR_NORMS` (``"batch"``, the RMS over the whole
            batch; ``"sample"``, the worst point's RMS, so every point meets the tolerance)
            or a callable ``norm(scaled_error) -> 0-dim tensor``.

    Returns:
        The :class:`~flowmatch.solvers.base.ODESolution` with the (B, ...) state at ``t1``,
        the number of velocity evaluations, and the (T,) times and (T, B, ...) states if
        requested.

    Raises:
        FlowmatchError: on an unknown solver or an invalid option.

    References:
        Hairer, Norsett & Wanner, "Solving Ordinary Differential Equations I" (1993).

    Example:
        >>> import torch
        >>> x0 = torch.ones(4, 2, dtype=torch.float64)
        >>> sol = solve(lambda t, x: x, x0, solver="rk4", steps=10)
        >>> round(sol.x[0, 0].item(), 6), sol.nfe
        (2.71828, 40)
        >>> back = solve(lambda t, x: x, sol.x, 1.0, 0.0, solver="dopri5", return_trajectory=True)
        >>> back.trajectory.shape, torch.allclose(back.x, x0, atol=1e-4)
        (torch.Size([11, 4, 2]), True)
    """
    spec = lookup(SOLVERS, solver, "solver")
    if not isinstance(x0, Tensor) or not torch.is_floating_point(x0) or x0.ndim == 0:
        got = f"{x0.dtype} tensor of shape {tuple(x0.shape)}" if isinstance(x0, Tensor) else x0
        raise FlowmatchError(f"x0 must be a floating-point tensor of shape (B, ...), got {got}")
    check_finite(x0, "x0")
    t0, t1 = _check_time("t0", t0), _check_time("t1", t1)
    if t0 == t1:
        raise FlowmatchError(f"t0 and t1 are both {t0}; pass t0 < t1 (forward) or t0 > t1")
    check_int(steps, "steps")
    for name, tol in (("atol", atol), ("rtol", rtol)):
        if not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0):
            raise FlowmatchError(f"{name} must be a positive number (e.g. 1e-5), got {tol!r}")

    norm = error_norm
    if isinstance(error_norm, str):
        norm = lookup(ERROR_NORMS, error_norm, "error norm")
    if not callable(norm):
        raise FlowmatchError(
            f"error_norm must be one of {sorted(ERROR_NORMS)} or a callable, got {error_norm!r}"
        )

    if spec.adaptive:
        if time_grid is not None:
            raise FlowmatchError(
                f"time_grid sets the steps of fixed-grid solvers, but {solver!r} is adaptive; "
                "drop it, or pass trajectory_times for the output times"
            )
        record = return_trajectory or trajectory_times is not None
        if trajectory_times is not None:
            ts = _check_grid("trajectory_times", trajectory_times, t0, t1)
        else:
            points = DEFAULT_TRAJECTORY_POINTS if record else 2
            ts = torch.linspace(t0, t1, points, dtype=torch.float64)
    else:
        if trajectory_times is not None:
            raise FlowmatchError(
                f"trajectory_times is for adaptive solvers; {solver!r} is fixed-grid and "
                "records its grid, so pass time_grid instead"
            )
        record = return_trajectory
        if time_grid is not None:
            ts = _check_grid("time_grid", time_grid, t0, t1)
        else:
            ts = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)
    return spec.run(
        f, x0, ts, atol=float(atol), rtol=float(rtol), return_trajectory=record, error_norm=norm
    )


def _check_time(name: str, t: float) -> float:
    """Return ``t`` as a finite float or raise."""
    try:
        value = float(t)
    except (TypeError, ValueError, RuntimeError):
        raise FlowmatchError(f"{name} must be a number, got {t!r}") from None
    if not math.isfinite(value):
        raise FlowmatchError(f"{name} must be finite, got {value}")
    return value


def _check_grid(name: str, grid: Tensor, t0: float, t1: float) -> Tensor:
    """Check a (T,) time grid from t0 to t1 and return it as float64 on the CPU.

    Endpoints may differ from t0 / t1 by float32 rounding; they are then set exactly.
    """
    if not isinstance(grid, Tensor) or grid.ndim != 1 or grid.numel() < 2:
        got = f"shape {tuple(grid.shape)}" if isinstance(grid, Tensor) else type(grid).__name__
        raise FlowmatchError(f"{name} must be a 1-D tensor of at least 2 times, got {got}")
    g = grid.detach().to("cpu", torch.float64).clone()  # (T,)
    check_finite(g, name)
    first, last = g[0].item(), g[-1].item()
    for end, value, target in (("start", first, t0), ("end", last, t1)):
        if not math.isclose(value, target, rel_tol=1e-6, abs_tol=1e-6):
            raise FlowmatchError(
                f"{name} must {end} at {'t0' if end == 'start' else 't1'}={target}, got {value}"
            )
    g[0], g[-1] = t0, t1
    direction = 1.0 if t1 > t0 else -1.0
    if not bool(((g.diff() * direction) > 0).all()):
        order = "increasing" if direction > 0 else "decreasing"
        raise FlowmatchError(
            f"{name} must be strictly {order} from t0={t0} to t1={t1}, got {g.tolist()[:8]}..."
        )
    return g
