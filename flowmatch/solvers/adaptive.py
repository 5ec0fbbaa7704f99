"""Adaptive-step embedded Runge-Kutta integration through ``torchdiffeq.odeint``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.solvers.base import ODESolution, SolverSpec, VelocityField
from flowmatch.solvers.norms import ErrorNorm, batch_rms

__all__ = ["AdaptiveSolver", "CountingField", "StepSizeUnderflow"]


class StepSizeUnderflow(FlowmatchError):
    """An adaptive solver's step size fell to zero before it reached the end time."""


class CountingField:
    """Wrap a velocity field and count its calls.

    Example:
        >>> import torch
        >>> g = CountingField(lambda t, x: -x)
        >>> _ = g(torch.tensor(0.0), torch.ones(3))
        >>> g.calls
        1
    """

    def __init__(self, f: VelocityField) -> None:
        self.f = f
        self.calls = 0

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        self.calls += 1
        return self.f(t, x)


@dataclass(frozen=True)
class AdaptiveSolver(SolverSpec):
    """A registry entry for an adaptive solver of ``torchdiffeq``.

    The step size is controlled so that the embedded error estimate e satisfies
    ||e / (atol + rtol * max(|x_n|, |x_{n+1}|))|| <= 1 on every accepted step, with the norm
    of :mod:`~flowmatch.solvers.norms` (the RMS over the batch unless another is given). Gradients
    flow by backpropagating through the solver's operations (not the adjoint method). The
    solver steps exactly onto the final time; intermediate trajectory times are interpolated.

    Attributes:
        method: the ``torchdiffeq.odeint`` method name.

    References:
        Chen et al., "Neural Ordinary Differential Equations" (2018);
        Dormand & Prince, "A family of embedded Runge-Kutta formulae" (1980).
    """

    method: str

    adaptive: ClassVar[bool] = True

    def run(
        self,
        f: VelocityField,
        x0: Tensor,
        ts: Tensor,
        *,
        atol: float,
        rtol: float,
        return_trajectory: bool,
        error_norm: ErrorNorm = batch_rms,
    ) -> ODESolution:
        """Integrate from ``ts[0]`` to ``ts[-1]``, reporting the state at every time in ``ts``."""
        counted = CountingField(f)
        ts = ts.to(x0.device)  # float64: torchdiffeq keeps times in float64 anyway
        # step_t makes the solver land exactly on t1 instead of stepping past it and
        # interpolating back: torchdiffeq's dense output is low order, and for dopri8 its
        # error at t1 is ~50x the tolerance.
        from torchdiffeq import odeint  # on first use: commands without an ODE start faster

        try:
            states = odeint(
                counted, x0, ts, rtol=rtol, atol=atol, method=self.method,
                options={"step_t": ts[-1:], "norm": error_norm},
            )  # fmt: skip  # (T, B, ...)
        except AssertionError as exc:  # torchdiffeq's step-size underflow
            if "underflow" not in str(exc):
                raise
            raise StepSizeUnderflow(
                f"{self.method} could not meet atol={atol:g}, rtol={rtol:g}: its step size "
                f"underflowed after {counted.calls} evaluations, so the field is too stiff or "
                "blows up along some trajectory; loosen atol/rtol or use a fixed-step solver "
                "(e.g. rk4 with 100 steps)"
            ) from None
        if not return_trajectory:
            return ODESolution(x=states[-1], nfe=counted.calls)
        return ODESolution(x=states[-1], nfe=counted.calls, ts=ts.to(x0.dtype), trajectory=states)
