"""The figures of a trained run: samples beside data, trajectories, p_t, loss, and a GIF."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from flowmatch.viz import (
    animate_path,
    plot_loss,
    plot_path_snapshots,
    plot_samples,
    plot_trajectories,
)

__all__ = ["write_run_figures"]

TRAJECTORY_TIMES = 41  # frames of the GIF and candidates for the snapshots


def write_run_figures(
    flow, info, out: Path, *, n: int = 2000, seed: int = 0, **solver_options
) -> list[Path]:
    """Write samples.png, trajectories.png, path.png, loss.png and path.gif into ``out``.

    Args:
        flow: a loaded model with ``sample_trajectory``.
        info: the run's :class:`~flowmatch.runs.RunInfo`.
        out: an existing folder.
        n: the number of samples and data points to draw.
        seed: the noise and data seed.
        solver_options: solver, steps, atol, rtol for the trajectories.

    Returns:
        The paths written.
    """
    from flowmatch.data import get_dataset
    from flowmatch.errors import FlowmatchError

    if n < 1:
        raise FlowmatchError(f"--n must be >= 1, got {n}")
    out = Path(out)
    g = torch.Generator().manual_seed(seed)
    data = get_dataset(info.config.data).held_out(n, g).reshape(-1, info.dim).numpy()
    ts = torch.linspace(0.0, 1.0, TRAJECTORY_TIMES)
    if solver_options.get("solver") in (None, "euler", "midpoint", "heun", "rk4"):
        # a fixed grid whose steps land on the trajectory times
        steps = max(int(solver_options.get("steps", 40)) // (TRAJECTORY_TIMES - 1), 1)
        solver_options = {**solver_options, "steps": steps * (TRAJECTORY_TIMES - 1)}
    else:
        solver_options = {**solver_options, "trajectory_times": ts}
    sol = flow.sample_trajectory(n, seed=seed, return_trajectory=True, **solver_options)
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
    log = info.run_dir / "metrics.jsonl"
    if log.exists():
        rows = [json.loads(ln) for ln in log.read_text().splitlines() if ln]
        if rows:
            steps_arr = np.array([r["step"] for r in rows])
            losses = np.array([r["loss"] for r in rows])
            paths.append(plot_loss(steps_arr, losses, out / "loss.png"))
    return paths


def _nearest(times: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Indices of ``times`` closest to each of ``wanted``, without repeats."""
    idx = np.abs(times[None, :] - wanted[:, None]).argmin(axis=1)
    return np.unique(idx)
