"""The figures of a trained run: samples beside data, trajectories, p_t, loss, a GIF, density."""

from __future__ import annotations

import json
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

__all__ = ["write_run_figures"]

TRAJECTORY_TIMES = 41  # frames of the GIF and candidates for the snapshots
DENSITY_GRID = 80  # points per axis of the 2-D density heatmaps
DENSITY_SOLVER = {"solver": "rk4", "steps": 10}  # 40 NFE: cheap, and ample for a picture


def write_run_figures(
    flow: Flow,
    info: RunInfo,
    out: Path,
    *,
    n: int = 2000,
    seed: int = 0,
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
        solver_options: solver, steps, atol, rtol for the trajectories (used only when
            ``flow.integrates_ode``).

    Returns:
        The paths written.
    """
    from flowmatch.data import get_dataset
    from flowmatch.errors import check_int

    check_int(n, "the number of samples n")
    out = Path(out)
    g = torch.Generator().manual_seed(seed)
    data = get_dataset(info.config.data).held_out(n, g).reshape(-1, info.dim).numpy()
    ts = torch.linspace(0.0, 1.0, TRAJECTORY_TIMES)
    if not flow.integrates_ode:  # a discrete flow: its states after each layer
        solver_options = {}
    elif solver_options.get("solver") in (None, "euler", "midpoint", "heun", "rk4"):
        # a fixed grid whose steps land on the trajectory times
        steps = max(int(solver_options.get("steps", 40)) // (TRAJECTORY_TIMES - 1), 1)
        solver_options = {**solver_options, "steps": steps * (TRAJECTORY_TIMES - 1)}
    else:
        solver_options = {**solver_options, "trajectory_times": ts}
    sol = flow.trajectory(n, seed=seed, return_trajectory=True, **solver_options)
    traj = sol.trajectory.reshape(sol.trajectory.shape[0], n, -1).cpu().numpy()  # (T, N, D)
    times = sol.ts.cpu().numpy()
    keep = _nearest(times, ts.numpy())
    traj, times = traj[keep], times[keep]

    name = info.config.data if len(info.config.data) < 40 else Path(info.config.data).name
    paths = [
        plot_samples(data, traj[-1], out / "samples.png", title=f"{name}: data vs. samples"),
        plot_trajectories(traj, out / "trajectories.png"),
        plot_path_snapshots(traj, times, out / "path.png"),
        animate_path(traj, times, out / "path.gif"),
    ]
    if info.dim == 2:
        paths += _density_figures(flow, data, out, name)
    log = info.run_dir / "metrics.jsonl"
    if log.exists():
        rows = [json.loads(ln) for ln in log.read_text().splitlines() if ln]
        if rows:
            steps_arr = np.array([r["step"] for r in rows])
            losses = np.array([r["loss"] for r in rows])
            paths.append(plot_loss(steps_arr, losses, out / "loss.png"))
    return paths


def _density_figures(flow: Flow, data: np.ndarray, out: Path, name: str) -> list[Path]:
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
        plot_density(xs, ys, log_p, out / "density.png", title=f"{name}: model density p(x)"),
        plot_density(
            xs, ys, log_p, out / "log_density.png", log=True, title=f"{name}: model log p(x)"
        ),
    ]


def _nearest(times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Indices of ``times`` closest to each of ``wanted``, without repeats."""
    idx = np.abs(times[None, :] - wanted[:, None]).argmin(axis=1)
    return np.unique(idx)
