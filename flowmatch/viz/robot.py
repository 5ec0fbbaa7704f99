"""Closed-loop rollouts of point-robot policies, one panel per policy or per instruction."""

from __future__ import annotations

from pathlib import Path

from flowmatch.viz._common import PathLike, _new_figure, _save_figure

__all__ = ["plot_instructed_rollouts", "plot_rollouts"]

SUCCESS_COLOR = "#3a7d44"
COLLISION_COLOR = "#c44e52"
TIMEOUT_COLOR = "#8c8c8c"
ASTRAY_COLOR = "#dd8452"  # reached a goal, but not as the instruction asked
GOAL_COLORS = {"red": "#d62728", "blue": "#1f77b4"}


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
    fig, axes = _new_figure(ncols=len(rollouts), panel=(4.6, 3.5))
    for ax, (name, r) in zip(axes, rollouts.items(), strict=True):
        n = min(max_paths, r.paths.shape[0])
        colors = [_outcome_color(r, i, followed=True) for i in range(n)]
        _draw_panel(ax, env.obstacle_radius, r, colors)
        goals = r.goals[:n].numpy()
        ax.scatter(goals[:, 0], goals[:, 1], marker="*", s=30, color="black", zorder=3)
        ax.set_title(
            f"{name}\nsuccess {r.success_rate:.0%}, collision {r.collision_rate:.0%}",
            fontsize=9,
        )
    return _save_figure(fig, path, overwrite)


def plot_instructed_rollouts(
    rollouts: dict, env, path: PathLike, max_paths: int = 100, *, overwrite: bool = True
) -> Path:
    """Draw episodes told instructions, one panel per entry, with the goals in their colours.

    Paths are green where the episode reached a goal as instructed, orange where it reached
    a goal against its instruction, red where it collided and grey where it ran out of time.

    Args:
        rollouts: panel title (e.g. the instruction) -> :class:`~flowmatch.envs.InstructedRollout`.
        env: the :class:`~flowmatch.envs.InstructedRobot` they ran in.
        path: output image file.
        max_paths: episodes drawn per panel (the first ones).
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.
    """
    from flowmatch.envs.instructions import GOALS

    ncols = min(len(rollouts), 4)
    nrows = -(-len(rollouts) // ncols)
    fig, axes = _new_figure(nrows=nrows, ncols=ncols, panel=(4.0, 3.1))
    for ax in axes[len(rollouts) :]:
        ax.set_axis_off()
    for ax, (name, r) in zip(axes, rollouts.items(), strict=False):
        n = min(max_paths, r.paths.shape[0])
        followed = r.followed
        colors = [_outcome_color(r, i, followed=bool(followed[i])) for i in range(n)]
        _draw_panel(ax, env.robot.obstacle_radius, r, colors)
        for k, color in enumerate(GOALS):
            xy = r.goals[:n, k].numpy()
            ax.scatter(xy[:, 0], xy[:, 1], s=12, color=GOAL_COLORS[color], zorder=3)
        ax.set_title(
            f"{name or '(no instruction)'}\nsuccess {r.success_rate:.0%}, "
            f"followed {r.followed_rate:.0%}, collision {r.collision_rate:.0%}",
            fontsize=8,
        )
    return _save_figure(fig, path, overwrite)


def _outcome_color(r, i: int, followed: bool) -> str:
    if bool(r.success[i]):
        return SUCCESS_COLOR if followed else ASTRAY_COLOR
    return COLLISION_COLOR if bool(r.collision[i]) else TIMEOUT_COLOR


def _draw_panel(ax, radius: float, r, colors: list[str]) -> None:
    """The obstacle and the first ``len(colors)`` paths of a rollout, on the task's box."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((0.0, 0.0), radius, color="#444444", alpha=0.35))
    for i, color in enumerate(colors):
        xy = r.paths[i, : int(r.steps[i]) + 1].numpy()  # (T, 2) up to where the episode ended
        ax.plot(xy[:, 0], xy[:, 1], color=color, lw=0.8, alpha=0.6)
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-0.9, 0.9)
    ax.set_aspect("equal", adjustable="box")
    ax.tick_params(labelsize=7)
