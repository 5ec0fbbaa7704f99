"""Schedules (alpha_t, sigma_t) of affine probability paths x_t = alpha_t x1 + sigma_t x0."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError

__all__ = [
    "CosineSchedule",
    "FunctionSchedule",
    "LinearSchedule",
    "Schedule",
    "ScheduleValues",
    "check_sigma_min",
]

BOUNDARY_ATOL = 1e-6
"""How far a user schedule's alpha_0, sigma_0 and alpha_1 may be from 0, 1 and 1."""


def check_sigma_min(sigma_min: object, name: str = "sigma_min") -> float:
    """Check that ``sigma_min`` is a number in [0, 1) and return it as a float.

    Example:
        >>> check_sigma_min(1e-4)
        0.0001
    """
    ok = isinstance(sigma_min, (int, float)) and not isinstance(sigma_min, bool)
    if not (ok and math.isfinite(sigma_min) and 0 <= sigma_min < 1):
        raise FlowmatchError(
            f"{name} must be in [0, 1) (the noise std left at t = 1; 0 for the plain "
            f"path), got {sigma_min!r}"
        )
    return float(sigma_min)


@dataclass(frozen=True)
class ScheduleValues:
    """The coefficients of an affine path and their time derivatives, each shaped like t."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor


class Schedule:
    """Coefficients with alpha_0 = 0, sigma_0 = 1 (noise) and alpha_1 = 1, sigma_1 = sigma_min
    (data, up to a small noise sigma_min >= 0; 0 for every built-in schedule but
    ``LinearSchedule(sigma_min)``)."""

    def __call__(self, t: Tensor) -> ScheduleValues:
        raise NotImplementedError

    @staticmethod
    def from_functions(
        alpha: Callable[[Tensor], Tensor],
        sigma: Callable[[Tensor], Tensor],
        d_alpha: Callable[[Tensor], Tensor] | None = None,
        d_sigma: Callable[[Tensor], Tensor] | None = None,
    ) -> FunctionSchedule:
        """A user schedule from functions of t; see :class:`FunctionSchedule`."""
        return FunctionSchedule(alpha, sigma, d_alpha, d_sigma)


class LinearSchedule(Schedule):
    """alpha_t = t, sigma_t = 1 - (1 - sigma_min) t: the straight line of the tutorial.

    With sigma_min = 0 (the default) x_t = (1 - t) x0 + t x1 and u_t = x1 - x0. With
    sigma_min > 0 it is the "optimal transport" path of Lipman et al.,
    x_t = t x1 + (1 - (1 - sigma_min) t) x0 with u_t = x1 - (1 - sigma_min) x0, which ends at
    the data blurred by N(0, sigma_min^2 I) rather than at the data itself.

    Args:
        sigma_min: the noise std left at t = 1, in [0, 1).

    References:
        Flow Matching for Generative Modeling (Lipman et al., 2023); Flow Straight and Fast
        (Liu et al., 2023).
    """

    def __init__(self, sigma_min: float = 0.0) -> None:
        self.sigma_min = check_sigma_min(sigma_min)

    def __call__(self, t: Tensor) -> ScheduleValues:
        one = torch.ones_like(t)
        shrink = 1.0 - self.sigma_min
        return ScheduleValues(alpha=t, sigma=1 - shrink * t, d_alpha=one, d_sigma=-shrink * one)

    def __repr__(self) -> str:
        return f"LinearSchedule(sigma_min={self.sigma_min})"


class CosineSchedule(Schedule):
    """alpha_t = sin(pi t / 2), sigma_t = cos(pi t / 2): a variance-preserving path.

    alpha_t^2 + sigma_t^2 = 1, so for standardized data the marginal variance stays near 1,
    as along a variance-preserving diffusion.

    References:
        Improved Denoising Diffusion Probabilistic Models (Nichol & Dhariwal, 2021);
        Flow Matching for Generative Modeling (Lipman et al., 2023).
    """

    def __call__(self, t: Tensor) -> ScheduleValues:
        angle = 0.5 * math.pi * t
        half_pi = 0.5 * math.pi
        return ScheduleValues(
            alpha=torch.sin(angle),
            sigma=torch.cos(angle),
            d_alpha=half_pi * torch.cos(angle),
            d_sigma=-half_pi * torch.sin(angle),
        )

    def __repr__(self) -> str:
        return "CosineSchedule()"


class FunctionSchedule(Schedule):
    """A user schedule: alpha_t and sigma_t given as elementwise functions of t.

    Derivatives not given are computed by forward-mode autodiff (``torch.func.jvp``), so the
    functions must be written in torch operations. The end points are checked once, here:
    alpha_0 = 0, sigma_0 = 1, alpha_1 = 1 (to 1e-6) and sigma_1 in [0, 1).

    Args:
        alpha: t (any shape) -> alpha_t of the same shape.
        sigma: t -> sigma_t.
        d_alpha: t -> d alpha_t / dt, or None for autodiff.
        d_sigma: t -> d sigma_t / dt, or None for autodiff.

    Example:
        >>> import torch
        >>> from flowmatch.paths import AffinePath
        >>> s = Schedule.from_functions(lambda t: t**2, lambda t: 1 - t**2)
        >>> v = s(torch.tensor([0.5], dtype=torch.float64))
        >>> v.alpha.item(), v.d_alpha.item(), v.d_sigma.item()
        (0.25, 1.0, -1.0)
        >>> p = AffinePath(s).sample(torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([0.5]))
        >>> p.xt.tolist(), p.ut.tolist()
        ([[0.25, 0.25]], [[1.0, 1.0]])
    """

    def __init__(
        self,
        alpha: Callable[[Tensor], Tensor],
        sigma: Callable[[Tensor], Tensor],
        d_alpha: Callable[[Tensor], Tensor] | None = None,
        d_sigma: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        given = {"alpha": alpha, "sigma": sigma, "d_alpha": d_alpha, "d_sigma": d_sigma}
        for name, fn in given.items():
            if not (callable(fn) or (fn is None and name.startswith("d_"))):
                raise FlowmatchError(f"{name} must be a function of t, got {fn!r}")
        self.alpha, self.sigma, self.d_alpha, self.d_sigma = alpha, sigma, d_alpha, d_sigma
        ends = self(torch.tensor([0.0, 1.0], dtype=torch.float64))
        a0, a1 = ends.alpha.tolist()
        s0, s1 = ends.sigma.tolist()
        if not (
            abs(a0) <= BOUNDARY_ATOL
            and abs(s0 - 1) <= BOUNDARY_ATOL
            and abs(a1 - 1) <= BOUNDARY_ATOL
            and 0 <= s1 < 1
        ):
            raise FlowmatchError(
                "a schedule must start at the noise (alpha_0 = 0, sigma_0 = 1) and end at the "
                f"data (alpha_1 = 1, sigma_1 in [0, 1)); got alpha_0 = {a0:g}, "
                f"sigma_0 = {s0:g}, alpha_1 = {a1:g}, sigma_1 = {s1:g}"
            )

    def _value_and_derivative(
        self, fn: Callable[[Tensor], Tensor], d_fn: Callable[[Tensor], Tensor] | None, t: Tensor
    ) -> tuple[Tensor, Tensor]:
        if d_fn is not None:
            value, derivative = fn(t), d_fn(t)
        else:  # elementwise, so the JVP with a tangent of ones is the pointwise derivative
            value, derivative = torch.func.jvp(fn, (t,), (torch.ones_like(t),))
        for name, x in (("value", value), ("derivative", derivative)):
            if not isinstance(x, Tensor) or x.shape != t.shape:
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise FlowmatchError(
                    f"a schedule function's {name} must be a tensor shaped like t "
                    f"{tuple(t.shape)}, got {got}"
                )
        return value, derivative

    def __repr__(self) -> str:
        names = [getattr(self.alpha, "__name__", "?"), getattr(self.sigma, "__name__", "?")]
        return f"FunctionSchedule(alpha={names[0]}, sigma={names[1]})"

    def __call__(self, t: Tensor) -> ScheduleValues:
        alpha, d_alpha = self._value_and_derivative(self.alpha, self.d_alpha, t)
        sigma, d_sigma = self._value_and_derivative(self.sigma, self.d_sigma, t)
        return ScheduleValues(alpha=alpha, sigma=sigma, d_alpha=d_alpha, d_sigma=d_sigma)
