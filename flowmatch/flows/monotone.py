"""Root finding for strictly increasing scalar equations g(a) = y, batched and safeguarded."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["MAX_ITER", "solve_increasing"]

MAX_ITER = 200  # enough for pure bisection to reach float64 precision on any bracket we build


@torch.no_grad()
def solve_increasing(
    g_and_slope: Callable[[Tensor], tuple[Tensor, Tensor]],
    y: Tensor,
    lo: Tensor,
    hi: Tensor,
    *,
    init: Tensor | None = None,
    noise: Callable[[Tensor], Tensor] | None = None,
    max_iter: int = MAX_ITER,
) -> Tensor:
    """Solve g(a) = y elementwise for a strictly increasing g, to the precision of the dtype.

    Newton's method a <- a - (g(a) - y) / g'(a), safeguarded by a bracket [lo, hi] that
    always holds the root: the sign of each residual moves one end of the bracket to the
    current iterate, and a Newton step that would leave the bracket is replaced by bisection.
    Newton converges quadratically near a simple root; bisection guarantees progress where g'
    is tiny (a nearly degenerate flow layer), so the solve terminates on every input.

    An element is done, and frozen, once its residual |g(a) - y| is at the level of the
    rounding error of evaluating g (``noise``; a few ulps of |y| + |a| by default), its
    Newton step is below a few ulps of a, or its bracket has shrunk to a few ulps. Beyond
    that point the floating-point g cannot tell candidates apart: the error left in a is the
    rounding error of g divided by g', the conditioning of the problem.

    Args:
        g_and_slope: a -> (g(a), g'(a)) elementwise, (N,) -> ((N,), (N,)), with g' >= 0.
        y: (N,) targets.
        lo: (N,) lower ends with g(lo) <= y.
        hi: (N,) upper ends with g(hi) >= y.
        init: (N,) starting points (clamped into the bracket); the midpoint by default.
        noise: a -> (N,) bound on the rounding error of g(a) - y; see above for the default.
        max_iter: the most iterations to run.

    Returns:
        (N,) solutions a with g(a) = y to the dtype's precision; no gradient flows through the
        iterations (differentiate by one Newton step at the solution, as
        :meth:`flowmatch.flows.PlanarLayer.inverse` does).

    Example:
        >>> y = torch.tensor([0.0, 8.0, -27.0], dtype=torch.float64)
        >>> a = solve_increasing(lambda a: (a**3, 3 * a**2), y, -y.abs() - 1, y.abs() + 1)
        >>> a.tolist()
        [0.0, 2.0, -3.0]
    """
    eps = torch.finfo(y.dtype).eps
    tiny = torch.finfo(y.dtype).tiny
    lo, hi = torch.minimum(lo, hi), torch.maximum(lo, hi)
    a = 0.5 * (lo + hi) if init is None else torch.minimum(torch.maximum(init, lo), hi)
    done = torch.zeros_like(y, dtype=torch.bool)
    for _ in range(max_iter):
        g, slope = g_and_slope(a)
        r = g - y  # (N,)
        level = noise(a) if noise is not None else 4 * eps * (y.abs() + a.abs())
        done = done | (r.abs() <= level)
        if bool(done.all()):
            break
        lo = torch.where(r < 0, a, lo)
        hi = torch.where(r > 0, a, hi)
        newton = a - r / slope
        inside = (newton > lo) & (newton < hi)  # also False for the NaN / Inf of g' = 0
        step = torch.where(inside, newton, 0.5 * (lo + hi))
        scale = step.abs().clamp_min(tiny / eps)
        done = done | ((step - a).abs() <= 2 * eps * scale) | (hi - lo <= 4 * eps * scale)
        a = torch.where(done, a, step)
    return a
