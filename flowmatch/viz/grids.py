"""Grid figures: a 2-D density heatmap and a grid of images."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from flowmatch.errors import FlowmatchError, check_int
from flowmatch.viz._common import (
    DATA_COLOR,
    NOISE_COLOR,
    PathLike,
    _as_array,
    _atomic_write,
    _check_finite,
    _dims_note,
    _n_bins,
    _new_figure,
    _panel_2d,
    _points,
    _save_figure,
    _subsample,
)

__all__ = ["image_grid_bytes", "plot_density", "save_image_grid"]


def plot_density(
    xx: Any,
    yy: Any | None,
    log_density: Any,
    path: PathLike,
    data: Any | None = None,
    *,
    log: bool = False,
    title: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Draw a density p = exp(log_density) evaluated on a grid, optionally with data points.

    In 2-D, ``xx`` and ``yy`` are either the grids of ``np.meshgrid(x, y)`` (any indexing), of
    the same shape as ``log_density``, or the axes ``x`` (W,) and ``y`` (H,) with
    ``log_density`` of shape (H, W). In 1-D pass ``yy=None`` and ``xx``, ``log_density`` of
    shape (G,): the density is drawn as a line over a histogram of ``data``.

    Args:
        xx: x coordinates of the grid.
        yy: y coordinates of the grid, or None for a 1-D density.
        log_density: log p at each grid point; ``-inf`` (zero density) is allowed.
        path: output file.
        data: optional points (N, D) drawn over the heatmap (first two coordinates).
        log: show log p instead of p (clipped 12 nats below its maximum), to reveal tails.
        title: the title; a description of what is shown if omitted.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.
    """
    ld = _as_array(log_density, "log_density", (1, 2), "(H, W), or (G,) with yy=None")
    _check_finite(ld, "log_density", allow_neg_inf=True)
    x = _as_array(xx, "xx", (1, 2), "(W,) or (H, W)")
    _check_finite(x, "xx")
    points = None if data is None else _points(data, "data")
    if log:
        top = ld.max() if np.isfinite(ld.max()) else 0.0
        values, label = np.maximum(ld, top - 12.0), "log density log p(x)"
    else:
        with np.errstate(over="ignore"):
            values, label = np.exp(ld), "density p(x)"
        if not np.isfinite(values).all():  # an unnormalized log-density too large to exp
            values, label = np.exp(ld - ld.max()), "density p(x) / max p(x)"
    default_title = ("log density" if log else "density") + " on a grid"
    if yy is None:
        if ld.ndim != 1 or x.shape != ld.shape:
            raise FlowmatchError(
                f"with yy=None, xx and log_density must both have shape (G,), got {x.shape} "
                f"and {ld.shape}"
            )
        fig, (ax,) = _new_figure(panel=(6.0, 3.8))
        if points is not None:
            edges = np.linspace(x.min(), x.max(), _n_bins(len(points)) + 1)
            ax.hist(points[:, 0], edges, density=True, color=DATA_COLOR, alpha=0.35, label="data")
        ax.plot(x, values, color=NOISE_COLOR, linewidth=1.8, label=label)
        ax.set_xlim(x.min(), x.max())
        ax.set_xlabel("x")
        ax.set_ylabel(label)
        ax.legend(fontsize=8, frameon=False)
        ax.tick_params(labelsize=8)
    else:
        y = _as_array(yy, "yy", (1, 2), "(H,) or (H, W)")
        _check_finite(y, "yy")
        grids_ok = (x.ndim == y.ndim == 2 and x.shape == y.shape == ld.shape) or (
            x.ndim == y.ndim == 1 and ld.shape == (len(y), len(x))
        )
        if not grids_ok:
            raise FlowmatchError(
                f"grid shapes do not fit: xx {x.shape}, yy {y.shape}, log_density {ld.shape}; "
                "pass meshgrids of log_density's shape, or axes x (W,), y (H,) with "
                "log_density (H, W)"
            )
        box = np.array([[x.min(), x.max()], [y.min(), y.max()]])
        width, height = _panel_2d(box, 4.4)
        fig, (ax,) = _new_figure(panel=(width + 0.8, height))  # and the colorbar
        mesh = ax.pcolormesh(x, y, values, cmap="viridis", shading="auto", rasterized=True)
        bar = fig.colorbar(mesh, ax=ax, shrink=0.85)
        bar.set_label(label, fontsize=9)
        bar.ax.tick_params(labelsize=8)
        if points is not None:
            shown = points[_subsample(len(points), 5_000)]
            ax.scatter(
                shown[:, 0],
                shown[:, 1],
                s=2.0,
                color="#ff4040",  # red reads on both ends of viridis
                alpha=0.6,
                linewidths=0,
                rasterized=True,
                label=f"data{_dims_note(points.shape[1])}",
            )
            ax.legend(fontsize=8, loc="upper right", markerscale=4, framealpha=0.6)
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(y.min(), y.max())
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize=8)
    ax.set_title(title or default_title, fontsize=10)
    return _save_figure(fig, path, overwrite)


def save_image_grid(
    images: Any,
    path: PathLike,
    nrow: int | None = None,
    *,
    scale: int | None = None,
    overwrite: bool = True,
) -> Path:
    """Tile images into one grid picture, min-max scaled over the whole grid.

    Grey images are written in grey levels, three-channel images in color, each separated by a
    thin white border. Small images are enlarged by an integer factor (nearest neighbour) so a
    28x28 digit stays readable.

    Args:
        images: shape (N, H, W), (N, 1, H, W) or (N, 3, H, W), in any value range.
        path: output file; PNG unless the suffix names another format Pillow writes.
        nrow: images per row (as in ``torchvision.utils.make_grid``); about sqrt(N) if omitted.
        scale: integer enlargement; by default the one that makes each image about 96 pixels.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.

    Example:
        >>> import tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = save_image_grid(np.random.rand(16, 1, 8, 8), f"{tmp}/grid.png")
        ...     out.name
        'grid.png'
    """
    suffix = Path(path).suffix.lower()
    _image_format(suffix, path)
    data = image_grid_bytes(images, suffix or ".png", nrow, scale=scale)
    return _atomic_write(path, lambda fh: fh.write(data), overwrite)


def image_grid_bytes(
    images: Any,
    suffix: str = ".png",
    nrow: int | None = None,
    *,
    scale: int | None = None,
    value_range: tuple[float, float] | None = None,
) -> bytes:
    """The picture of :func:`save_image_grid` as the bytes of an image file, not written.

    Args:
        images: shape (N, H, W), (N, 1, H, W) or (N, 3, H, W), in any value range.
        suffix: the file suffix whose format to use, e.g. ``".png"`` or ``".jpg"``.
        nrow: images per row; about sqrt(N) if omitted.
        scale: integer enlargement; by default the one that makes each image about 96 pixels.
        value_range: (black, white): values are clipped to it and scaled from it, so that
            several grids (the frames of an animation) share one grey scale; by default the
            grid's own minimum and maximum.

    Returns:
        The encoded image.

    Example:
        >>> import numpy as np
        >>> image_grid_bytes(np.random.rand(4, 8, 8))[:4]
        b'\\x89PNG'
    """
    fmt = _image_format(suffix.lower(), suffix)
    arr = _as_array(images, "images", (3, 4), "(N, H, W) or (N, C, H, W) with C in {1, 3}")
    if arr.ndim == 4:
        if arr.shape[1] not in (1, 3):
            raise FlowmatchError(f"images must have 1 or 3 channels, got shape {arr.shape}")
        arr = arr.transpose(0, 2, 3, 1)  # (N, H, W, C)
    else:
        arr = arr[..., None]
    _check_finite(arr, "images")
    n, h, w, c = arr.shape
    per_row = math.ceil(math.sqrt(n)) if nrow is None else nrow
    check_int(per_row, "nrow")
    if scale is None:
        scale = max(1, 96 // max(h, w))
    check_int(scale, "scale")
    if value_range is None:
        lo, hi = float(arr.min()), float(arr.max())
    else:
        lo, hi = (float(v) for v in value_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise FlowmatchError(
                f"value_range must be finite (low, high) with low < high, got {value_range}"
            )
        arr = arr.clip(lo, hi)
    arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale
    cols = min(per_row, n)
    rows = math.ceil(n / cols)
    border = 2
    grid = np.ones((rows * (h + border) + border, cols * (w + border) + border, c))
    for k in range(n):
        top = border + (k // cols) * (h + border)
        left = border + (k % cols) * (w + border)
        grid[top : top + h, left : left + w] = arr[k]
    pixels = (grid * 255.0).round().astype(np.uint8)
    from PIL import Image

    img = Image.fromarray(pixels[..., 0] if c == 1 else pixels)  # uint8: mode L or RGB
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _image_format(suffix: str, path: PathLike) -> str:
    """Pillow's format name for a file suffix (PNG for none), or one line if it has none."""
    from PIL import Image

    known = Image.registered_extensions()  # e.g. {".png": "PNG", ...}
    if suffix and suffix not in known:
        raise FlowmatchError(f"cannot write an image as {suffix!r} ({path}); use .png")
    return known.get(suffix, "PNG")
