"""Animated GIF of particles carried by a flow from noise (t = 0) to data (t = 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowmatch.errors import FlowmatchError
from flowmatch.viz._common import (
    NOISE_COLOR,
    PathLike,
    _atomic_write,
    _dims_note,
    _frame_2d,
    _limits,
    _marker_style,
    _n_bins,
    _new_figure,
    _subsample,
    _times,
    _trajectory,
)

__all__ = ["animate_path"]

MAX_ANIMATED = 2_000  # particles per frame; keeps the GIF small and the frames quick to draw
HOLD_MS = 1_000  # how long the last frame stays before the loop restarts


def animate_path(
    trajectory: Any, ts: Any, path: PathLike, fps: int = 12, *, overwrite: bool = True
) -> Path:
    """Write an animated GIF with one frame per trajectory time, holding the last one a second.

    Axis limits are fixed across frames. 2-D (and the first two coordinates for D > 2) is a
    scatter of up to 2,000 particles; 1-D is a density histogram. The GIF loops forever.
    Pillow merges consecutive frames that render identically, so a trajectory that stalls can
    give fewer than T frames.

    Args:
        trajectory: positions of shape (T, N, D), ``trajectory[0]`` at t = 0 (noise).
        ts: the T times, shape (T,), shown in each frame's title.
        path: output file; must end in ``.gif``.
        fps: frames per second.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.

    Example:
        >>> import tempfile, numpy as np
        >>> traj = np.random.default_rng(0).normal(size=(5, 100, 2))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = animate_path(traj, np.linspace(0, 1, 5), f"{tmp}/flow.gif")
        ...     out.suffix
        '.gif'
    """
    traj = _trajectory(trajectory)
    n_steps, n, d = traj.shape
    t = _times(ts, n_steps)
    if Path(path).suffix.lower() != ".gif":
        raise FlowmatchError(f"animate_path writes a GIF; give a path ending in .gif, got {path}")
    if not fps > 0:
        raise FlowmatchError(f"fps must be > 0, got {fps}")

    traj = traj[:, _subsample(n, MAX_ANIMATED)]
    fig, (ax,) = _new_figure(panel=(4.0, 4.0), dpi=80)
    if d == 1:
        lo, hi = _limits(traj.reshape(-1, 1))[0]
        edges = np.linspace(lo, hi, _n_bins(traj.shape[1]) + 1)
        hists = [np.histogram(frame[:, 0], edges, density=True)[0] for frame in traj]
        moving = ax.stairs(hists[0], edges, fill=True, color=NOISE_COLOR, alpha=0.7)
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, 1.08 * max(max(float(h.max()) for h in hists), 1e-12))
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.tick_params(labelsize=7)

        def update(k: int) -> None:
            moving.set_data(values=hists[k])
    else:
        style = _marker_style(traj.shape[1])
        moving = ax.scatter(traj[0, :, 0], traj[0, :, 1], color=NOISE_COLOR, **style)
        _frame_2d(ax, _limits(traj[:, :, :2].reshape(-1, 2)))
        ax.tick_params(labelsize=7)

        def update(k: int) -> None:
            moving.set_offsets(traj[k, :, :2])

    # A figure title keeps its place; an axes title is re-placed on every full draw.
    title = fig.suptitle(f"t = {t[0]:.2f}{_dims_note(d)}", fontsize=10)
    # Blitting: lay out and draw the still parts (axes, ticks) once, then per frame only the
    # moving artist and the title; a full draw per frame would be several times slower.
    canvas = fig.canvas
    canvas.draw()  # lays the figure out with every artist in place
    fig.set_layout_engine("none")  # and freezes that layout
    moving.set_visible(False)
    title.set_visible(False)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    moving.set_visible(True)
    title.set_visible(True)
    rgb = []
    for k in range(n_steps):
        update(k)
        title.set_text(f"t = {t[k]:.2f}{_dims_note(d)}")
        canvas.restore_region(background)
        ax.draw_artist(moving)
        fig.draw_artist(title)
        rgb.append(np.array(canvas.buffer_rgba())[..., :3])  # copy: the buffer is reused
    frames = _to_palette(rgb)  # T images sharing one palette
    frame_ms = max(20, round(1000 / fps))
    durations = [frame_ms] * n_steps
    durations[-1] = frame_ms + HOLD_MS
    return _atomic_write(
        path,
        lambda fh: frames[0].save(
            fh,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=durations,
            loop=0,
        ),
        overwrite,
    )


def _to_palette(rgb: list[np.ndarray]) -> list[Any]:
    """Map (H, W, 3) uint8 frames onto one shared 256-color palette, exactly.

    One palette for every frame keeps colors from flickering; it comes from median cut over
    the first and last frames (noise and data differ most). Each color is then sent to its
    nearest palette entry here rather than by Pillow, whose mapping is coarser and turns the
    white background off-white.
    """
    from PIL import Image

    pick = np.concatenate([rgb[0], rgb[-1]])
    entries = np.asarray(Image.fromarray(pick).quantize(colors=256).getpalette(), dtype=np.int64)
    entries = entries[: 3 * 256].reshape(-1, 3)
    entries[np.argmin(np.abs(entries - 255).sum(axis=1))] = 255  # keep the background white
    palette = entries.astype(np.uint8).ravel().tobytes()
    frames = []
    for frame in rgb:
        key = (frame.astype(np.uint32) << np.array([16, 8, 0], dtype=np.uint32)).sum(axis=2)
        colors, inverse = np.unique(key.ravel(), return_inverse=True)
        col = np.stack([colors >> 16, (colors >> 8) & 255, colors & 255], axis=1)  # (U, 3)
        dist = ((col[:, None, :].astype(np.int64) - entries[None, :, :]) ** 2).sum(axis=2)
        index = dist.argmin(axis=1).astype(np.uint8)[inverse].reshape(frame.shape[:2])
        img = Image.frombytes("P", (frame.shape[1], frame.shape[0]), index.tobytes())
        img.putpalette(palette)
        frames.append(img)
    return frames
