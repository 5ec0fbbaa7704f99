"""The shared vocabulary of the solvers: velocity fields, solutions and solver specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

__all__ = ["ODESolution", "SolverSpec", "VelocityField"]

VelocityField = Callable[[Tensor, Tensor], Tensor]
"""``f(t, x) -> dx/dt``: ``t`` is a 0-dim tensor (dtype and device of ``x``), ``x`` is (B, ...)."""


@dataclass
class ODESolution:
    """The result of integrating dx/dt = f(t, x) from t0 to t1.

    Attributes:
        x: the state at t1, same shape as the initial state.
        nfe: the number of velocity evaluations (calls to ``f``) the solve made.
        ts: the (T,) times of the recorded trajectory, from t0 to t1, or None.
        trajectory: the (T, *x.shape) states at ``ts`` (first t0, last t1), or None.
    """

    x: Tensor
    nfe: int
    ts: Tensor | None = None
    trajectory: Tensor | None = None


@dataclass(frozen=True)
class SolverSpec:
    """One entry of the solver registry: what a method is and how to run it.

    Subclasses implement :meth:`run`. A fixed-grid solver steps exactly on the times it is
    given; an adaptive solver picks its own steps and reports the state at the times it is
    given.

    Attributes:
        name: the registry key, also the command-line choice.
        order: the global order of accuracy p (error O(h^p)).
        description: one line for ``--help``.
        adaptive: whether the solver chooses its own steps from ``atol`` / ``rtol``.
    """

    name: str
    order: int
    description: str

    adaptive: ClassVar[bool] = False

    def run(
        self,
        f: VelocityField,
        x0: Tensor,
        ts: Tensor,
        *,
        atol: float,
        rtol: float,
        return_trajectory: bool,
        error_norm: Callable[[Tensor], Tensor] | None = None,
    ) -> ODESolution:
        """Integrate from ``ts[0]`` to ``ts[-1]`` (inputs already validated by ``solve``).

        Args:
            f: the velocity field.
            x0: (B, ...) state at ``ts[0]``.
            ts: (T,) float64 times, strictly monotone, T >= 2: the step grid of a fixed-grid
                solver, the output times of an adaptive one.
            atol: absolute tolerance (adaptive solvers only).
            rtol: relative tolerance (adaptive solvers only).
            return_trajectory: whether to fill ``ts`` and ``trajectory`` of the solution.
            error_norm: the norm of an adaptive solver's scaled error estimate (see
                :mod:`~flowmatch.solvers.norms`); unused by fixed-grid solvers.

        Returns:
            The :class:`ODESolution`.
        """
        raise NotImplementedError
