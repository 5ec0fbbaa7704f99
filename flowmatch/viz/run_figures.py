"""The figures of a trained run: samples beside data, trajectories, p_t, loss, a GIF, density."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from flowmatch.viz import (
    animate_path,
    plot_density,
    plot_loss,
    plot_path_snapshots,
    plot_samples,
    plot_trajectories,
)

if TYPE_CHECKING:
    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["FIGURES", "trajectory_options", "write_loss_figure", "write_run_figures"]

TRAJECTORY_TIMES = 41  # frames of the GIF and candidates for the snapshots
DENSITY_GRID = 80  # points per axis of the 2-D density heatmaps
DENSITY_SOLVER = {"solver": "rk4", "steps": 10}  # 40 NFE: cheap, and ample for a picture
FIGURES = (
    "samples.png",
    "trajectories.png",
    "path.png",
    "path.gif",
    "density.png",
    "log_density.png",
    "loss.png",
)
"""The files :func:`write_run_figures` may write (the last three for some runs only)."""


def write_run_figures(
    flow: Flow,
    info: RunInfo,
    out: Path,
    *,
    n: int = 2000,
    seed: int = 0,
    overwrite: bool = True,
    **solver_options: Any,
) -> list[Path]:
    """Write samples.png, trajectories.png, path.png, loss.png and path.gif into ``out``.

    For 2-D runs it also writes density.png and log_density.png, the model's density on a
    grid by the exact change of variables (rk4, 10 steps, for a flow that integrates an ODE).

    Args:
        flow: a loaded flow.
        info: the run's :class:`~flowmatch.training.runs.RunInfo`.
        out: an existing folder.
        n: the number of samples and data points to draw.
        seed: the noise and data seed.
        overwrite: replace existing figures; if False, refuse one (``FileExistsError``).
        solver_options: solver, steps, atol, rtol for the trajectories (used only when
            ``flow.integrates_ode``).

    Returns:
        The paths written.
    """
    from flowmatch.errors import check_int
    from flowmatch.evaluation.samples import FEW_STEP

    check_int(n, "the number of samples n")
    out = Path(out)
    g = torch.Generator().manual_seed(seed)
    data = info.config.dataset().held_out(n, g).reshape(-1, info.dim).numpy()
    ts = torch.linspace(0.0, 1.0, TRAJECTORY_TIMES)
    solver_options = trajectory_options(flow, solver_options)
    sol = flow.trajectory(n, seed=seed, return_trajectory=True, **solver_options)
    traj = sol.trajectory.reshape(sol.trajectory.shape[0], n, -1).cpu().numpy()  # (T, N, D)
    times = sol.ts.cpu().numpy()
    keep = _nearest(times, ts.numpy())
    traj, times = traj[keep], times[keep]

    name = info.config.data if len(info.config.data) < 40 else Path(info.config.data).name
    keep_old = {"overwrite": overwrite}
    title = f"{name}: data vs. samples"
    label, more = "model samples", {}
    if flow.integrates_ode:  # the solve drawn, and a few-step solve beside it
        label = _solver_label(solver_options, sol.nfe)
        few_step = {"solver": FEW_STEP.solver, "steps": FEW_STEP.steps}
        few = flow.trajectory(n, seed=seed, return_trajectory=False, **few_step)
        more[_solver_label(few_step, few.nfe)] = few.x.reshape(n, -1).cpu().numpy()
    paths = [
        plot_samples(
            data, traj[-1], out / "samples.png", title=title, label=label, more=more, **keep_old
        ),
        plot_trajectories(traj, out / "trajectories.png", **keep_old),
        plot_path_snapshots(traj, times, out / "path.png", **keep_old),
        animate_path(traj, times, out / "path.gif", **keep_old),
    ]
    if info.dim == 2:
        paths += _density_figures(flow, data, out, name, overwrite)
    loss = write_loss_figure(info, out / "loss.png", overwrite=overwrite)
    return paths if loss is None else [*paths, loss]


def write_loss_figure(info: RunInfo, path: Path, *, overwrite: bool = True) -> Path | None:
    """Draw the run's training loss from its metrics.jsonl into ``path``.

    Args:
        info: the run's :class:`~flowmatch.training.runs.RunInfo`.
        path: output file.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written, or None for a run that logged no loss yet.
    """
    from flowmatch.training.checkpoint import METRICS_FILE
    from flowmatch.training.metrics_log import read_metrics

    rows = [r for r in read_metrics(info.run_dir / METRICS_FILE) if "loss" in r]
    if not rows:  # a torn last line was dropped with a warning
        return None
    steps = np.array([r["step"] for r in rows])
    losses = np.array([r["loss"] for r in rows], dtype=float)
    return plot_loss(steps, losses, path, overwrite=overwrite)


def trajectory_options(flow: Flow, solver_options: dict[str, Any]) -> dict[str, Any]:
    """The solver options of the figures' trajectory: none for a discrete flow (its states
    after each layer), a fixed grid rounded up to land on the :data:`TRAJECTORY_TIMES`, or an
    adaptive solver reporting at those times."""
    if not flow.integrates_ode:
        return {}
    if solver_options.get("solver") in (None, "euler", "midpoint", "heun", "rk4"):
        steps = max(int(solver_options.get("steps", 40)) // (TRAJECTORY_TIMES - 1), 1)
        return {**solver_options, "steps": steps * (TRAJECTORY_TIMES - 1)}
    return {**solver_options, "trajectory_times": torch.linspace(0.0, 1.0, TRAJECTORY_TIMES)}


def _density_figures(
    flow: Flow, data: np.ndarray, out: Path, name: str, overwrite: bool
) -> list[Path]:
    """density.png and log_density.png: log p on a grid over the data's range (padded)."""
    lo, hi = data.min(axis=0), data.max(axis=0)
    pad = 0.15 * (hi - lo) + 1e-6
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], DENSITY_GRID)  # (W,)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], DENSITY_GRID)  # (H,)
    xx, yy = np.meshgrid(xs, ys)  # (H, W)
    grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1)).float()  # (H W, 2)
    options = {"divergence": "exact", **DENSITY_SOLVER} if flow.integrates_ode else {}
    log_p = flow.log_prob(grid.to(flow.device), **options)
    log_p = log_p.reshape(DENSITY_GRID, DENSITY_GRID).cpu().numpy()
    return [
        plot_density(
            xs,
            ys,
            log_p,
            out / "density.png",
            title=f"{name}: model density p(x)",
            overwrite=overwrite,
        ),
        plot_density(
            xs,
            ys,
            log_p,
            out / "log_density.png",
            log=True,
            title=f"{name}: model log p(x)",
            overwrite=overwrite,
        ),
    ]


def _solver_label(options: dict[str, Any], nfe: int) -> str:
    """``heun, 2 steps (4 NFE)``, or ``dopri5 (86 NFE)`` for an adaptive solver."""
    from flowmatch.solvers import SOLVERS

    solver = options.get("solver", "midpoint")
    if solver in SOLVERS and SOLVERS[solver].adaptive:
        return f"{solver} ({nfe} NFE)"
    return f"{solver}, {options.get('steps')} steps ({nfe} NFE)"


def _nearest(times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Indices of ``times`` closest to each of ``wanted``, without repeats."""
    idx = np.abs(times[None, :] - wanted[:, None]).argmin(axis=1)
    return np.unique(idx)
