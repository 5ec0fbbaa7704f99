"""Shared plumbing of the figures: input checks, limits, marker styles and atomic saving.

matplotlib and Pillow are imported inside the functions, so ``import flowmatch`` never pays for
them, and figures are drawn on an explicit Agg canvas, never through ``pyplot``'s global state.
"""

from __future__ import annotations

import io
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from flowmatch.errors import FlowmatchError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__: list[str] = []  # private to flowmatch.viz

PathLike = str | os.PathLike[str]

DPI = 120
MAX_SCATTER = 20_000  # more points only blur a 4-inch panel and slow the render down
NOISE_COLOR = "#4c72b0"  # t = 0
SAMPLE_COLOR = "#dd8452"  # t = 1, model samples
DATA_COLOR = "#3a7d44"
PATH_COLOR = "#8c8c8c"


# ----------------------------------------------------------------------------- checks


def _as_array(x: Any, name: str, ndims: tuple[int, ...], expected: str) -> np.ndarray:
    """Convert ``x`` to a non-empty float64 array with one of ``ndims`` dimensions."""
    if hasattr(x, "detach"):  # a torch.Tensor, possibly on a GPU or requiring grad
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FlowmatchError(f"{name} must be a numeric array {expected}, got {x!r:.60}") from err
    if arr.ndim not in ndims:
        raise FlowmatchError(f"{name} must have shape {expected}, got shape {arr.shape}")
    if arr.size == 0:
        raise FlowmatchError(f"{name} is empty (shape {arr.shape}); pass at least one value")
    return arr


def _check_finite(arr: np.ndarray, name: str, allow_neg_inf: bool = False) -> None:
    bad = np.isnan(arr) | (np.isposinf(arr)) | (np.isneginf(arr) & (not allow_neg_inf))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise FlowmatchError(
            f"{name} contains {int(bad.sum())} non-finite values ({arr[idx]} at index {idx}); "
            "remove them before plotting"
        )


def _points(x: Any, name: str) -> np.ndarray:
    """Finite points of shape (N, D); a flat (N,) array is read as D = 1."""
    arr = _as_array(x, name, (1, 2), "(N, D)")
    _check_finite(arr, name)
    return arr[:, None] if arr.ndim == 1 else arr


def _trajectory(x: Any) -> np.ndarray:
    """Finite particle positions of shape (T, N, D)."""
    arr = _as_array(x, "trajectory", (3,), "(T, N, D) with T times, N particles, D dims")
    _check_finite(arr, "trajectory")
    return arr


def _times(ts: Any, n_times: int) -> np.ndarray:
    t = _as_array(ts, "ts", (1,), f"({n_times},), one time per trajectory step")
    if t.shape[0] != n_times:
        raise FlowmatchError(f"ts has {t.shape[0]} times but the trajectory has {n_times} steps")
    _check_finite(t, "ts")
    return t


# ----------------------------------------------------------------------------- layout


def _limits(points: np.ndarray, q: float = 0.5, pad: float = 0.08) -> np.ndarray:
    """Per-column plot limits (D, 2) from robust percentiles, so outliers don't squash a plot."""
    lo, hi = np.percentile(points, [q, 100.0 - q], axis=0)
    span = hi - lo
    flat = span <= 1e-12 * np.maximum(np.abs(lo), 1.0)
    # a constant column still gets a window around its value
    half = np.where(flat, 0.5 * np.maximum(np.abs(lo), 1.0), pad * span)
    return np.stack([lo - half, hi + half], axis=1)


def _subsample(n: int, cap: int) -> np.ndarray:
    """Evenly spaced indices of at most ``cap`` of ``n`` items (deterministic, order-robust)."""
    if n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def _marker_style(n: int) -> dict[str, Any]:
    """Small, translucent markers; the more points, the smaller and fainter."""
    return {
        "s": 6.0 if n <= 1_000 else 3.0 if n <= 5_000 else 1.5,
        "alpha": float(np.clip(25.0 / math.sqrt(n), 0.15, 0.8)),
        "linewidths": 0,
        "rasterized": True,  # keeps .pdf / .svg output small
    }


def _dims_note(d: int) -> str:
    return f" (first 2 of {d} dims)" if d > 2 else ""


def _n_bins(n: int) -> int:
    return int(np.clip(round(math.sqrt(n)), 20, 80))


def _new_figure(
    ncols: int = 1, nrows: int = 1, panel: tuple[float, float] = (4.0, 4.0), dpi: int = DPI
) -> tuple[Figure, list[Axes]]:
    """A figure on its own Agg canvas (no pyplot) and its axes, row-major."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(axes.ravel())


def _panel_2d(lims: np.ndarray, width: float, extra: float = 0.6) -> tuple[float, float]:
    """The (width, height) in inches of a panel whose equal-aspect box has the shape of
    ``lims`` (2, 2), so wide data (moons) is not drawn in a square of empty space.

    ``extra`` is the height the title and tick labels take. The aspect is capped at 1:3 either
    way, so a nearly flat cloud still gets a readable panel.
    """
    span = lims[:, 1] - lims[:, 0]
    ratio = float(np.clip(span[1] / max(span[0], 1e-12), 1 / 3, 3.0))
    inner = width - 0.5  # tick labels on the left
    return width, inner * ratio + extra


def _frame_2d(ax: Axes, lims: np.ndarray) -> None:
    ax.set_xlim(*lims[0])
    ax.set_ylim(*lims[1])
    ax.set_aspect("equal", adjustable="box")
    ax.tick_params(labelsize=8)


def _scatter(ax: Axes, x: np.ndarray, color: str, label: str | None = None) -> None:
    """Scatter the first two coordinates of (N, D) points, at most MAX_SCATTER of them."""
    x = x[_subsample(len(x), MAX_SCATTER)]
    ax.scatter(x[:, 0], x[:, 1], color=color, label=label, **_marker_style(len(x)))


def _count(n: int) -> str:
    return f"n={n:,}" if n <= MAX_SCATTER else f"{MAX_SCATTER:,} of n={n:,} shown"


# ----------------------------------------------------------------------------- writing


def _atomic_write(
    path: PathLike, write: Callable[[IO[bytes]], None], overwrite: bool = True
) -> Path:
    """Call ``write`` on a hidden temporary file next to ``path``, then move it into place.

    With ``overwrite`` False the file is rendered to memory and created by
    :func:`flowmatch.storage.write_new`: an existing ``path``, even one created meanwhile, is
    never replaced (``FileExistsError``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        from flowmatch.storage import write_new

        buf = io.BytesIO()
        write(buf)
        return write_new(path, buf.getvalue())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:  # "x": never clobber; plain open respects the umask
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _save_figure(fig: Figure, path: PathLike, overwrite: bool = True) -> Path:
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        known = ", ".join(sorted(fig.canvas.get_supported_filetypes()))
        raise FlowmatchError(f"cannot write a figure as {fmt!r} ({path}); use one of: {known}")
    return _atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=fig.dpi), overwrite)
