"""Closed-loop rollouts of point-robot policies, one panel per policy."""

from __future__ import annotations

from pathlib import Path

from flowmatch.viz._common import PathLike, _new_figure, _save_figure

__all__ = ["plot_rollouts"]

SUCCESS_COLOR = "#3a7d44"
COLLISION_COLOR = "#c44e52"
TIMEOUT_COLOR = "#8c8c8c"


def plot_rollouts(
    rollouts: dict, env, path: PathLike, max_paths: int = 100, *, overwrite: bool = True
) -> Path:
    """Draw each policy's episodes: paths colored by outcome, the obstacle and the goals.

    Args:
        rollouts: policy name -> :class:`~flowmatch.envs.Rollout`.
        env: the :class:`~flowmatch.envs.PointRobot` they ran in.
        path: output image file.
        max_paths: episodes drawn per panel (the first ones).
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.
    """
    from matplotlib.patches import Circle

    fig, axes = _new_figure(ncols=len(rollouts), panel=(4.6, 3.5))
    for ax, (name, r) in zip(axes, rollouts.items(), strict=True):
        ax.add_patch(Circle((0.0, 0.0), env.obstacle_radius, color="#444444", alpha=0.35))
        n = min(max_paths, r.paths.shape[0])
        for i in range(n):
            steps = int(r.steps[i])
            xy = r.paths[i, : steps + 1].numpy()  # (T, 2) up to where the episode ended
            color = (
                SUCCESS_COLOR
                if bool(r.success[i])
                else COLLISION_COLOR
                if bool(r.collision[i])
                else TIMEOUT_COLOR
            )
            ax.plot(xy[:, 0], xy[:, 1], color=color, lw=0.8, alpha=0.6)
        goals = r.goals[:n].numpy()
        ax.scatter(goals[:, 0], goals[:, 1], marker="*", s=30, color="black", zorder=3)
        ax.set_title(
            f"{name}\nsuccess {r.success_rate:.0%}, collision {r.collision_rate:.0%}",
            fontsize=9,
        )
        ax.set_xlim(-1.35, 1.35)
        ax.set_ylim(-0.9, 0.9)
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize=7)
    return _save_figure(fig, path, overwrite)
