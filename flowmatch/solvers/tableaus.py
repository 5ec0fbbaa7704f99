"""Butcher tableaus of explicit Runge-Kutta methods, as data.

An s-stage explicit method advances x_n at t_n by a step h as

    k_i = f(t_n + c_i h, x_n + h sum_{j<i} a_ij k_j),    i = 1..s
    x_{n+1} = x_n + h sum_i b_i k_i
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowmatch.errors import FlowmatchError

__all__ = ["DP5", "EULER", "HEUN", "MIDPOINT", "RK4", "RK38", "ButcherTableau"]


@dataclass(frozen=True)
class ButcherTableau:
    """The coefficients (a, b, c) of an explicit Runge-Kutta method.

    Attributes:
        a: (s, s) stage coefficients, strictly lower triangular (explicit method).
        b: (s,) weights of the stage slopes in the step, summing to 1.
        c: (s,) stage times as fractions of the step, c_i = sum_j a_ij.

    Example:
        >>> from flowmatch.solvers.tableaus import RK4
        >>> RK4.stages
        4
        >>> RK4.nonzero_a[2]
        ((1, 0.5),)
    """

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]

    def __post_init__(self) -> None:
        s = len(self.b)
        if s == 0 or len(self.c) != s or len(self.a) != s or any(len(r) != s for r in self.a):
            raise FlowmatchError(
                f"a Butcher tableau needs a (s, s), b (s,), c (s,) with s >= 1; got "
                f"a {[len(r) for r in self.a]}, b {len(self.b)}, c {len(self.c)}"
            )
        if any(self.a[i][j] != 0.0 for i in range(s) for j in range(i, s)):
            raise FlowmatchError("Butcher tableau a must be strictly lower triangular (explicit)")
        if not math.isclose(math.fsum(self.b), 1.0, abs_tol=1e-12):
            raise FlowmatchError(f"Butcher tableau weights b must sum to 1, got {sum(self.b)}")
        for i in range(s):
            if not math.isclose(math.fsum(self.a[i]), self.c[i], abs_tol=1e-12):
                raise FlowmatchError(f"Butcher tableau needs c[{i}] = sum(a[{i}]), got {self.c[i]}")

    @property
    def stages(self) -> int:
        """The number of stages s, i.e. velocity evaluations per step."""
        return len(self.b)

    @property
    def nonzero_a(self) -> tuple[tuple[tuple[int, float], ...], ...]:
        """For each stage i, the pairs (j, a_ij) with a_ij != 0."""
        return tuple(tuple((j, a) for j, a in enumerate(row) if a != 0.0) for row in self.a)

    @property
    def nonzero_b(self) -> tuple[tuple[int, float], ...]:
        """The pairs (i, b_i) with b_i != 0."""
        return tuple((i, b) for i, b in enumerate(self.b) if b != 0.0)


EULER = ButcherTableau(a=((0.0,),), b=(1.0,), c=(0.0,))
"""Forward Euler, order 1."""

MIDPOINT = ButcherTableau(a=((0.0, 0.0), (0.5, 0.0)), b=(0.0, 1.0), c=(0.0, 0.5))
"""Explicit midpoint, order 2."""

HEUN = ButcherTableau(a=((0.0, 0.0), (1.0, 0.0)), b=(0.5, 0.5), c=(0.0, 1.0))
"""Heun's method (explicit trapezoid), order 2."""

RK4 = ButcherTableau(
    a=(
        (0.0, 0.0, 0.0, 0.0),
        (0.5, 0.0, 0.0, 0.0),
        (0.0, 0.5, 0.0, 0.0),
        (0.0, 0.0, 1.0, 0.0),
    ),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    c=(0.0, 0.5, 0.5, 1.0),
)
"""The classic fourth-order Runge-Kutta method."""

RK38 = ButcherTableau(
    a=(
        (0.0, 0.0, 0.0, 0.0),
        (1 / 3, 0.0, 0.0, 0.0),
        (-1 / 3, 1.0, 0.0, 0.0),
        (1.0, -1.0, 1.0, 0.0),
    ),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    c=(0.0, 1 / 3, 2 / 3, 1.0),
)
"""Kutta's 3/8 rule, order 4: four distinct stage times per step (the classic method has three).

A field that varies quickly in t (a high-frequency time embedding) is sampled at more
distinct times per evaluation, which measured more accurate per step on such fields.
"""

DP5 = ButcherTableau(
    a=(
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        (1 / 5, 0.0, 0.0, 0.0, 0.0, 0.0),
        (3 / 40, 9 / 40, 0.0, 0.0, 0.0, 0.0),
        (44 / 45, -56 / 15, 32 / 9, 0.0, 0.0, 0.0),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0.0, 0.0),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0),
    ),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0),
)
"""The fifth-order solution of Dormand-Prince 5(4) on a fixed grid: 6 stages at 6 distinct
times per step (the adaptive method's seventh stage only estimates the error)."""
