"""The solver registry: every ODE method by name; the names are the command-line choices."""

from __future__ import annotations

from flowmatch.solvers.adaptive import AdaptiveSolver
from flowmatch.solvers.base import SolverSpec
from flowmatch.solvers.fixed import FixedGridSolver
from flowmatch.solvers.tableaus import DP5, EULER, HEUN, MIDPOINT, RK4, RK38

__all__ = ["SOLVERS"]

_SPECS: tuple[SolverSpec, ...] = (
    FixedGridSolver("euler", 1, "forward Euler, 1 evaluation per step", EULER),
    FixedGridSolver("midpoint", 2, "explicit midpoint, 2 evaluations per step", MIDPOINT),
    FixedGridSolver("heun", 2, "Heun / explicit trapezoid, 2 evaluations per step", HEUN),
    FixedGridSolver("rk4", 4, "classic Runge-Kutta, 4 evaluations per step", RK4),
    FixedGridSolver("rk38", 4, "Kutta's 3/8 rule, 4 evaluations at 4 times per step", RK38),
    FixedGridSolver("dp5", 5, "Dormand-Prince 5th order on a fixed grid, 6 evaluations", DP5),
    AdaptiveSolver("dopri5", 5, "adaptive Dormand-Prince 5(4)", "dopri5"),
    AdaptiveSolver("dopri8", 8, "adaptive Dormand-Prince 8(7)", "dopri8"),
    AdaptiveSolver("bosh3", 3, "adaptive Bogacki-Shampine 3(2)", "bosh3"),
    AdaptiveSolver("adaptive_heun", 2, "adaptive Heun 2(1)", "adaptive_heun"),
)

SOLVERS: dict[str, SolverSpec] = {spec.name: spec for spec in _SPECS}
"""Solver name -> :class:`~flowmatch.solvers.base.SolverSpec`, fixed-grid methods first."""
