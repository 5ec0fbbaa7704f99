"""Sample quality of a trained flow at several solvers and step counts, beside a data floor."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.metrics import mmd, wasserstein2

__all__ = ["DEFAULT_SETTINGS", "EvalRow", "SolverSetting", "evaluate_flow"]


@dataclass(frozen=True)
class SolverSetting:
    """A solver name and its number of steps (ignored by adaptive solvers)."""

    solver: str
    steps: int = 1


DEFAULT_SETTINGS: tuple[SolverSetting, ...] = (
    SolverSetting("euler", 1),
    SolverSetting("euler", 2),
    SolverSetting("euler", 4),
    SolverSetting("euler", 8),
    SolverSetting("euler", 100),
    SolverSetting("heun", 4),
    SolverSetting("midpoint", 50),
    SolverSetting("rk4", 5),
    SolverSetting("dopri5"),
)


@dataclass
class EvalRow:
    """One line of the evaluation table."""

    solver: str
    steps: int | None
    nfe: int
    w2: float
    mmd: float
    seconds: float


def evaluate_flow(
    flow,
    reference: Tensor,
    *,
    settings: tuple[SolverSetting, ...] = DEFAULT_SETTINGS,
    seed: int = 0,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> list[EvalRow]:
    """Draw as many samples as ``reference`` has rows with each setting; score W2 and MMD.

    The same noise seed is used for every setting, so differences come from the solver alone.
    """
    from flowmatch.solvers import SOLVERS

    n = reference.shape[0]
    ref = reference.reshape(n, -1).cpu()
    rows = []
    for s in settings:
        adaptive = SOLVERS[s.solver].adaptive
        t0 = time.perf_counter()
        sol = flow.sample_trajectory(
            n,
            solver=s.solver,
            steps=s.steps,
            seed=seed,
            return_trajectory=False,
            atol=atol,
            rtol=rtol,
        )
        seconds = time.perf_counter() - t0
        x = sol.x.reshape(n, -1).cpu()
        if not torch.isfinite(x).all():
            rows.append(
                EvalRow(
                    s.solver,
                    None if adaptive else s.steps,
                    sol.nfe,
                    float("inf"),
                    float("inf"),
                    seconds,
                )
            )
            continue
        rows.append(
            EvalRow(
                solver=s.solver,
                steps=None if adaptive else s.steps,
                nfe=sol.nfe,
                w2=wasserstein2(x, ref),
                mmd=mmd(x, ref),
                seconds=seconds,
            )
        )
    return rows
