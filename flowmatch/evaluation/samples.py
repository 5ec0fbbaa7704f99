"""Sample quality of a trained flow at several solvers and step counts, beside a data floor.

Also the W2-versus-NFE curve of one fixed-grid solver, the smallest step count whose W2 is
within a tolerance of the converged (adaptive) result, and the straightness of the flow.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from flowmatch.flows.base import Flow
from flowmatch.flows.continuous import FlowModel
from flowmatch.metrics import mmd, wasserstein2, wasserstein2_many

__all__ = [
    "CURVE_STEPS",
    "DEFAULT_SETTINGS",
    "FEW_STEP",
    "EvalRow",
    "SolverSetting",
    "evaluate_flow",
    "flow_path_statistics",
    "mean_over_draws",
    "parse_settings",
    "ratio_of_means",
    "recommend_steps",
    "solver_options",
    "w2_nfe_curve",
]

CURVE_STEPS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 32, 100)
"""Step counts of the W2-versus-NFE curve."""

STRAIGHTNESS_POINTS = 1000
"""Source draws whose trajectories give the straightness (at most)."""

STRAIGHTNESS_STEPS = 25
"""rk4 steps (4 NFE each) of those trajectories: rk4's weights are non-negative, so the
computed straightness is a sum of squares (>= 0), and 25 steps resolve trained 2-D fields to
well under a percent, at a fixed cost (dopri5 at rtol 1e-5 took ~650 NFE on a rough field)."""

GRID_FIT_POINTS = 512
"""Source draws along which a model-fitted time grid estimates the error (seeded apart)."""


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
    SolverSetting("heun", 2),
    SolverSetting("heun", 4),
    SolverSetting("midpoint", 50),
    SolverSetting("rk4", 5),
    SolverSetting("dopri5"),
)


def parse_settings(text: str, flag: str = "--rows") -> tuple[SolverSetting, ...]:
    """Solver settings from ``"solver:steps,solver,..."`` (an adaptive solver takes no steps).

    Example:
        >>> parse_settings("euler:100,heun:2,dopri5")
        (SolverSetting(solver='euler', steps=100), SolverSetting(solver='heun', steps=2), \
SolverSetting(solver='dopri5', steps=1))
        >>> parse_settings("euler")
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: --rows: 'euler' needs its steps, e.g. euler:100
    """
    from flowmatch.errors import FlowmatchError, lookup
    from flowmatch.solvers import SOLVERS

    settings = []
    for item in text.split(","):
        name, _, steps = item.strip().partition(":")
        spec = lookup(SOLVERS, name, f"solver in {flag}")
        if spec.adaptive:
            if steps:
                raise FlowmatchError(f"{flag}: {name} is adaptive and takes no steps, got {item}")
            settings.append(SolverSetting(name))
            continue
        if not steps:
            raise FlowmatchError(f"{flag}: {name!r} needs its steps, e.g. {name}:100")
        if not steps.isdigit() or int(steps) < 1:
            raise FlowmatchError(
                f"{flag}: the steps of {name} must be a whole number >= 1, got {item}"
            )
        settings.append(SolverSetting(name, int(steps)))
    if len(set(settings)) != len(settings):
        raise FlowmatchError(f"{flag} names a setting twice: {text}")
    return tuple(settings)


def ratio_of_means(values: Sequence[float], floors: Sequence[float]) -> tuple[float, float]:
    """The ratio of the mean W2 to the mean floor over paired draws, and its standard error.

    Draw k gives a model's W2 ``values[k]`` and the floor ``floors[k]``. The error is the
    ratio estimator's (delta method): sd_k(values[k] - r floors[k]) / (sqrt(K) mean(floors)),
    NaN for one draw.

    Example:
        >>> r, se = ratio_of_means([0.12, 0.14, 0.13], [0.10, 0.13, 0.11])
        >>> round(r, 4), round(se, 4)
        (1.1471, 0.0404)
    """
    from flowmatch.errors import FlowmatchError

    if len(values) != len(floors) or not values:
        raise FlowmatchError("ratio_of_means needs one floor per draw, and at least one draw")
    floor = statistics.fmean(floors)
    ratio = statistics.fmean(values) / floor
    if len(values) == 1:
        return ratio, math.nan
    spread = statistics.stdev(v - ratio * f for v, f in zip(values, floors, strict=True))
    return ratio, spread / (math.sqrt(len(values)) * floor)


FEW_STEP = SolverSetting("heun", 2)
"""The few-step setting shown beside the 100-NFE samples (``flowmatch demo``, samples.png):
4 NFE, the best of Euler 4, midpoint 2, Heun 2 and rk4 1 on moons with the default training
(benchmarks/bench_defaults.py --solvers; docs/benchmarks.md, "Defaults")."""


@dataclass
class EvalRow:
    """One line of the evaluation table.

    ``w2_sd`` and ``w2_draws`` are set on a row merged from several draws
    (:func:`mean_over_draws`): the sample standard deviation of W2 over the draws and the W2 of
    each; None for a single draw.
    """

    solver: str
    steps: int | None
    nfe: int
    w2: float
    mmd: float
    seconds: float
    w2_sd: float | None = None
    w2_draws: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON, without the spread fields of a single draw."""
        out = dict(vars(self))
        if self.w2_draws is None:
            del out["w2_sd"], out["w2_draws"]
        else:
            out["w2_draws"] = list(self.w2_draws)
        return out


def mean_over_draws(draws: Sequence[Sequence[EvalRow]]) -> list[EvalRow]:
    """Merge the rows of independent draws into one row per setting: W2 their mean.

    Each draw lists the same settings in the same order (as :func:`evaluate_flow` gives them
    for the same ``settings``). A merged row's W2 is the mean over the draws, ``w2_sd`` their
    sample standard deviation (inf if a draw diverged) and ``w2_draws`` the draws' values;
    NFE, seconds and MMD are the first draw's. One draw is returned as it is.

    Example:
        >>> a = [EvalRow("euler", 4, 4, 0.2, 0.01, 0.1)]
        >>> b = [EvalRow("euler", 4, 4, 0.4, float("nan"), 0.1)]
        >>> r = mean_over_draws([a, b])[0]
        >>> round(r.w2, 6), round(r.w2_sd, 6), r.w2_draws, r.mmd
        (0.3, 0.141421, (0.2, 0.4), 0.01)
    """
    from flowmatch.errors import FlowmatchError

    if not draws:
        raise FlowmatchError("mean_over_draws needs at least one draw of rows")
    if len(draws) == 1:
        return list(draws[0])
    merged = []
    for rows in zip(*draws, strict=True):
        if len({(r.solver, r.steps) for r in rows}) != 1:
            raise FlowmatchError(
                f"the draws list different settings in one place: {[r.solver for r in rows]}"
            )
        values = tuple(r.w2 for r in rows)
        finite = all(math.isfinite(v) for v in values)
        merged.append(
            replace(
                rows[0],
                w2=statistics.fmean(values) if finite else math.inf,
                w2_sd=statistics.stdev(values) if finite else math.inf,
                w2_draws=values,
            )
        )
    return merged


def evaluate_flow(
    flow: Flow,
    reference: Tensor,
    *,
    settings: tuple[SolverSetting, ...] = DEFAULT_SETTINGS,
    seed: int = 0,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    time_grid: str = "uniform",
    with_mmd: bool = True,
) -> list[EvalRow]:
    """Draw as many samples as ``reference`` has rows with each setting; score W2 and MMD.

    With ``with_mmd=False`` the MMD column is NaN (for curves that only need W2).

    The same noise seed is used for every setting, so differences come from the solver alone.
    Fixed-grid solvers step on the named ``time_grid`` (see
    :data:`~flowmatch.solvers.TIME_GRIDS`). A flow without an ODE
    (``flow.integrates_ode`` false) gives one row, labelled "layers".
    """
    from flowmatch.solvers import SOLVERS

    n = reference.shape[0]
    ref = reference.reshape(n, -1).cpu()
    if not flow.integrates_ode:
        settings = (SolverSetting("layers"),)
    drawn = []  # (setting, samples or None where the solve diverged, NFE, seconds)
    for s in settings:
        t0 = time.perf_counter()
        sol = flow.trajectory(
            n,
            seed=seed,
            return_trajectory=False,
            **solver_options(flow, s.solver, s.steps, time_grid, atol=atol, rtol=rtol),
        )
        seconds = time.perf_counter() - t0
        x = sol.x.reshape(n, -1).cpu()
        drawn.append((s, x if torch.isfinite(x).all() else None, sol.nfe, seconds))
    w2s = iter(wasserstein2_many([(x, ref) for _, x, _, _ in drawn if x is not None]))
    rows = []
    for s, x, nfe, seconds in drawn:
        adaptive = s.solver not in SOLVERS or SOLVERS[s.solver].adaptive
        steps = None if adaptive else s.steps
        if x is None:
            rows.append(EvalRow(s.solver, steps, nfe, math.inf, math.inf, seconds))
            continue
        quality = mmd(x, ref) if with_mmd else math.nan
        rows.append(EvalRow(s.solver, steps, nfe, next(w2s), quality, seconds))
    return rows


def solver_options(
    flow: Flow,
    solver: str,
    steps: int,
    time_grid: str = "uniform",
    *,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    backward: bool = False,
) -> dict[str, Any]:
    """Keyword arguments of ``flow.trajectory`` / ``invert`` for a solver and time grid.

    Empty for a flow without an ODE (``flow.integrates_ode`` false). A non-uniform grid is
    built for fixed-grid ODE solvers only (a model-fitted grid from :data:`GRID_FIT_POINTS`
    source draws of a fixed seed); ``backward`` reverses it for ``invert`` (t from 1 to 0).
    """
    from flowmatch.errors import FlowmatchError
    from flowmatch.solvers import SOLVERS, TIME_GRIDS, make_time_grid

    if time_grid not in TIME_GRIDS:
        raise FlowmatchError(
            f"unknown time grid '{time_grid}'; choose one of: {', '.join(TIME_GRIDS)}"
        )
    if not flow.integrates_ode:
        return {}
    opts: dict[str, Any] = {"solver": solver, "steps": steps, "atol": atol, "rtol": rtol}
    if solver not in SOLVERS or SOLVERS[solver].adaptive or time_grid == "uniform":
        return opts
    x0 = flow.noise(GRID_FIT_POINTS, torch.Generator().manual_seed(12345))
    grid = make_time_grid(time_grid, steps, f=flow.field(), x0=x0, order=SOLVERS[solver].order)
    opts["time_grid"] = (1.0 - grid) if backward else grid
    return opts


def w2_nfe_curve(
    flow: Flow,
    reference: Tensor,
    *,
    solver: str = "euler",
    steps: tuple[int, ...] = CURVE_STEPS,
    time_grid: str = "uniform",
    seed: int = 0,
    known: list[EvalRow] | None = None,
) -> list[EvalRow]:
    """W2 and MMD of one fixed-grid solver at each step count, on one noise seed.

    Rows of ``known`` (from :func:`evaluate_flow` with the same reference, seed and time grid)
    with this solver are reused instead of sampled again.
    """
    have = {r.steps: r for r in known or () if r.solver == solver}
    todo = tuple(SolverSetting(solver, k) for k in steps if k not in have)
    new = evaluate_flow(
        flow, reference, settings=todo, seed=seed, time_grid=time_grid, with_mmd=False
    )
    rows = {**have, **{r.steps: r for r in new}}
    return [rows[k] for k in steps]


def recommend_steps(
    curve: list[EvalRow], converged_w2: float, tolerance: float = 0.05
) -> EvalRow | None:
    """The row with the fewest NFE whose W2 <= (1 + tolerance) * converged W2, or None.

    Example:
        >>> rows = [EvalRow("euler", k, k, w, 0.0, 0.0) for k, w in [(1, 2.0), (2, 1.04)]]
        >>> recommend_steps(rows, converged_w2=1.0).steps
        2
    """
    for row in sorted(curve, key=lambda r: r.nfe):
        if row.w2 <= (1.0 + tolerance) * converged_w2:
            return row
    return None


def flow_path_statistics(flow: FlowModel, reference: Tensor, *, seed: int = 0) -> dict:
    """Straightness and normalized path energy of a flow's trajectories (rk4, 25 steps).

    Computed in the network's standardized units, where the ODE is solved (and where a
    straight path makes Euler exact), from as many source draws as ``reference`` has rows
    (at most :data:`STRAIGHTNESS_POINTS`);
    W2^2(p0, p1) of the normalized path energy is the exact W2^2 between these source draws
    and the standardized reference data.

    Returns:
        A JSON-able dict: straightness, normalized_straightness, path_energy, chord_energy,
        w2_squared_source_data, normalized_path_energy, nfe.
    """
    from flowmatch.metrics import normalized_path_energy, path_statistics

    reference = reference[:STRAIGHTNESS_POINTS]
    n = reference.shape[0]
    z0 = flow.noise(n, torch.Generator().manual_seed(seed))  # (n, ...) standardized
    stats = path_statistics(flow.field(), z0, solver="rk4", steps=STRAIGHTNESS_STEPS)
    z1_ref = flow.standardize(reference.to(flow.device).reshape(n, *flow.shape))
    w2_sq = wasserstein2(z0.cpu(), z1_ref.cpu()) ** 2
    return {
        "straightness": stats.straightness,
        "normalized_straightness": stats.normalized_straightness,
        "path_energy": stats.path_energy,
        "chord_energy": stats.chord_energy,
        "w2_squared_source_data": w2_sq,
        "normalized_path_energy": normalized_path_energy(stats.path_energy, w2_sq),
        "nfe": stats.nfe,
    }
