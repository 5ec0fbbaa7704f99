"""ODE solvers for flows: fixed-grid Runge-Kutta and adaptive methods behind one ``solve``.

Time convention: t = 0 is noise N(0, I), t = 1 is data. Integrating forward (0 -> 1) samples;
backward (1 -> 0) maps data to noise.

Example:
    >>> import torch
    >>> from flowmatch.solvers import SOLVERS, solve
    >>> print(*SOLVERS)
    euler midpoint heun rk4 rk38 dp5 dopri5 dopri8 bosh3 adaptive_heun
    >>> solve(lambda t, x: torch.ones_like(x), torch.zeros(3, 2), steps=4).x[0].tolist()
    [1.0, 1.0]
"""

from flowmatch.solvers.adaptive import AdaptiveSolver, CountingField, StepSizeUnderflow
from flowmatch.solvers.base import ODESolution, SolverSpec, VelocityField
from flowmatch.solvers.fixed import FixedGridSolver, rk_integrate
from flowmatch.solvers.integrate import solve
from flowmatch.solvers.norms import ERROR_NORMS, ErrorNorm, grouped_sample_norm
from flowmatch.solvers.registry import SOLVERS
from flowmatch.solvers.tableaus import DP5, EULER, HEUN, MIDPOINT, RK4, RK38, ButcherTableau
from flowmatch.solvers.time_grids import TIME_GRIDS, TimeGrid, make_time_grid

__all__ = [
    "DP5",
    "ERROR_NORMS",
    "EULER",
    "HEUN",
    "MIDPOINT",
    "RK4",
    "RK38",
    "SOLVERS",
    "TIME_GRIDS",
    "AdaptiveSolver",
    "ButcherTableau",
    "CountingField",
    "ErrorNorm",
    "FixedGridSolver",
    "ODESolution",
    "SolverSpec",
    "StepSizeUnderflow",
    "TimeGrid",
    "VelocityField",
    "grouped_sample_norm",
    "make_time_grid",
    "rk_integrate",
    "solve",
]
