"""Static figures: samples against data, particle paths, snapshots of p_t, loss, density, images.

Every function takes numpy arrays (a CPU ``torch.Tensor`` is accepted too), writes exactly one
file atomically (a hidden temporary file in the same folder, then ``os.replace``) and returns its
:class:`~pathlib.Path`. The file format follows the suffix (``.png`` unless stated otherwise).

Points have shape (N, D). Two-dimensional data is drawn as a scatter with equal aspect; for
D > 2 only the first two coordinates are drawn and the title says so; for D == 1 histograms and
density lines replace the scatter. Time follows the package convention: t = 0 is noise
N(0, I), t = 1 is data.

matplotlib and Pillow are imported inside the functions, so ``import flowmatch`` never pays for
them, and figures are drawn on an explicit Agg canvas, never through ``pyplot``'s global state.
"""

from __future__ import annotations

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

__all__ = [
    "plot_density",
    "plot_loss",
    "plot_path_snapshots",
    "plot_samples",
    "plot_trajectories",
    "save_image_grid",
]

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


def _atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a hidden temporary file next to ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:  # "x": never clobber; plain open respects the umask
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _save_figure(fig: Figure, path: PathLike) -> Path:
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        known = ", ".join(sorted(fig.canvas.get_supported_filetypes()))
        raise FlowmatchError(f"cannot write a figure as {fmt!r} ({path}); use one of: {known}")
    return _atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=fig.dpi))


# ----------------------------------------------------------------------------- figures


def plot_samples(data: Any, samples: Any, path: PathLike, title: str | None = None) -> Path:
    """Draw data (left) and model samples (right) side by side on the same axis limits.

    Args:
        data: reference points x1, shape (N, D) (or (N,) for D = 1).
        samples: model samples, shape (M, D) with the same D.
        path: output file; the suffix picks the format (png, pdf, svg, ...).
        title: optional title over both panels.

    Returns:
        The path written.

    Example:
        >>> import tempfile, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = plot_samples(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)),
        ...                        f"{tmp}/samples.png", title="example")
        ...     out.stat().st_size > 0
        True
    """
    x1 = _points(data, "data")
    xs = _points(samples, "samples")
    if x1.shape[1] != xs.shape[1]:
        raise FlowmatchError(
            f"data has {x1.shape[1]} dims but samples have {xs.shape[1]}; they must match"
        )
    d = x1.shape[1]
    fig, (ax_data, ax_model) = _new_figure(2)
    if d == 1:
        lo, hi = _limits(np.concatenate([x1, xs]))[0]
        edges = np.linspace(lo, hi, _n_bins(max(len(x1), len(xs))) + 1)
        h_data = np.histogram(x1[:, 0], edges, density=True)[0]
        h_model = np.histogram(xs[:, 0], edges, density=True)[0]
        ax_data.stairs(h_data, edges, fill=True, color=DATA_COLOR, alpha=0.6)
        ax_model.stairs(h_model, edges, fill=True, color=SAMPLE_COLOR, alpha=0.6, label="samples")
        ax_model.stairs(h_data, edges, color=DATA_COLOR, linewidth=1.2, label="data (outline)")
        ax_model.legend(fontsize=8, frameon=False)
        top = 1.08 * max(h_data.max(), h_model.max(), 1e-12)
        for ax in (ax_data, ax_model):
            ax.set_xlim(lo, hi)
            ax.set_ylim(0, top)
            ax.set_xlabel("x")
            ax.tick_params(labelsize=8)
        ax_data.set_ylabel("density")
    else:
        lims = _limits(np.concatenate([x1[:, :2], xs[:, :2]]))
        _scatter(ax_data, x1, DATA_COLOR)
        _scatter(ax_model, xs, SAMPLE_COLOR)
        for ax in (ax_data, ax_model):
            _frame_2d(ax, lims)
    note = _dims_note(d)
    ax_data.set_title(f"data ({_count(len(x1))}){note}", fontsize=10)
    ax_model.set_title(f"model samples ({_count(len(xs))}){note}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save_figure(fig, path)


def plot_trajectories(
    trajectory: Any, path: PathLike, n_paths: int = 200, ts: Any | None = None
) -> Path:
    """Draw particle paths from noise (t = 0) to samples (t = 1).

    Lines follow up to ``n_paths`` particles; the start and end points of all particles (up to
    20,000) are drawn in two colors. For D == 1 the horizontal axis is time instead.

    Args:
        trajectory: positions of shape (T, N, D), ``trajectory[0]`` at t = 0 (noise) and
            ``trajectory[-1]`` at t = 1 (samples).
        path: output file.
        n_paths: how many particle paths to draw as lines (evenly chosen among the N).
        ts: the T times, used as the horizontal axis for D == 1; evenly spaced on [0, 1] if
            omitted.

    Returns:
        The path written.
    """
    traj = _trajectory(trajectory)
    n_steps, n, d = traj.shape
    if n_paths < 0:
        raise FlowmatchError(f"n_paths must be >= 0, got {n_paths}")
    t = np.linspace(0.0, 1.0, n_steps) if ts is None else _times(ts, n_steps)
    lines = _subsample(n, n_paths) if n_paths else np.arange(0)
    ends = _subsample(n, MAX_SCATTER)
    fig, (ax,) = _new_figure(panel=(5.0, 5.0) if d > 1 else (6.5, 4.0))
    line_alpha = float(np.clip(8.0 / math.sqrt(max(len(lines), 1)), 0.1, 0.6))
    start, end = traj[0, ends], traj[-1, ends]
    style = _marker_style(len(ends))
    style |= {"alpha": max(style["alpha"], 0.5), "zorder": 2}  # end points over the lines
    if d == 1:
        if len(lines):
            ax.plot(t, traj[:, lines, 0], color=PATH_COLOR, alpha=line_alpha, linewidth=0.6)
        ax.scatter(np.full(len(ends), t[0]), start[:, 0], color=NOISE_COLOR, **style)
        ax.scatter(np.full(len(ends), t[-1]), end[:, 0], color=SAMPLE_COLOR, **style)
        ax.set_ylim(*_limits(traj.reshape(-1, 1))[0])
        ax.set_xlabel("t")
        ax.set_ylabel("x")
        ax.tick_params(labelsize=8)
    else:
        from matplotlib.collections import LineCollection

        if len(lines):
            segments = traj[:, lines, :2].transpose(1, 0, 2)  # (n_paths, T, 2)
            ax.add_collection(
                LineCollection(
                    list(segments), colors=PATH_COLOR, alpha=line_alpha, linewidths=0.6, zorder=1
                )
            )
        ax.scatter(start[:, 0], start[:, 1], color=NOISE_COLOR, **style)
        ax.scatter(end[:, 0], end[:, 1], color=SAMPLE_COLOR, **style)
        _frame_2d(ax, _limits(traj[:, :, :2].reshape(-1, 2)))
    handles = [
        ax.scatter([], [], color=NOISE_COLOR, s=20, label="t=0 (noise)"),
        ax.scatter([], [], color=SAMPLE_COLOR, s=20, label="t=1 (samples)"),
    ]
    fig.legend(handles=handles, fontsize=9, loc="outside lower center", ncols=2, frameon=False)
    ax.set_title(
        f"particle paths ({len(lines):,} of {n:,} drawn, {n_steps} steps){_dims_note(d)}",
        fontsize=10,
    )
    return _save_figure(fig, path)


def plot_path_snapshots(trajectory: Any, ts: Any, path: PathLike, n_panels: int = 6) -> Path:
    """Draw the marginal p_t at a few times, one panel per time, on shared axis limits.

    The times are picked evenly among ``ts`` and always include the first and the last. In 2-D
    each panel is a histogram of counts (a scatter when there are fewer than 2,000 particles);
    in 1-D a density histogram.

    Args:
        trajectory: positions of shape (T, N, D).
        ts: the T times of the trajectory, shape (T,).
        path: output file.
        n_panels: how many times to show (at most T); at most 6 panels per row.

    Returns:
        The path written.
    """
    traj = _trajectory(trajectory)
    n_steps, n, d = traj.shape
    t = _times(ts, n_steps)
    if n_panels < 1:
        raise FlowmatchError(f"n_panels must be >= 1, got {n_panels}")
    picks = np.unique(np.linspace(0, n_steps - 1, min(n_panels, n_steps)).round().astype(int))
    nrows = math.ceil(len(picks) / 6)  # at most 6 per row, rows filled evenly
    ncols = math.ceil(len(picks) / nrows)
    fig, axes = _new_figure(ncols, nrows, panel=(2.6, 2.6 if d > 1 else 2.2))
    if d == 1:
        lo, hi = _limits(traj[picks].reshape(-1, 1))[0]
        edges = np.linspace(lo, hi, _n_bins(n) + 1)
        hists = [np.histogram(traj[k, :, 0], edges, density=True)[0] for k in picks]
        top = 1.08 * max(float(h.max()) for h in hists)
        for i, (ax, h) in enumerate(zip(axes, hists, strict=False)):
            ax.stairs(h, edges, fill=True, color=NOISE_COLOR, alpha=0.7)
            ax.set_xlim(lo, hi)
            ax.set_ylim(0, max(top, 1e-12))
            if i % ncols:  # one shared density scale: label it in the first column only
                ax.tick_params(labelleft=False)
            else:
                ax.set_ylabel("density", fontsize=8)
    else:
        lims = _limits(traj[picks, :, :2].reshape(-1, 2))
        bins = int(np.clip(round(math.sqrt(n / 4)), 25, 100))
        for ax, k in zip(axes, picks, strict=False):
            if n < 2_000:
                _scatter(ax, traj[k], NOISE_COLOR)
            else:
                from matplotlib.colors import PowerNorm

                counts, xe, ye = np.histogram2d(traj[k, :, 0], traj[k, :, 1], bins, range=lims)
                ax.imshow(
                    counts.T,
                    origin="lower",
                    extent=(xe[0], xe[-1], ye[0], ye[-1]),
                    cmap="Blues",
                    norm=PowerNorm(0.5, vmin=0, vmax=max(counts.max(), 1)),  # shows the tails
                    interpolation="nearest",
                )
            _frame_2d(ax, lims)
    for ax, k in zip(axes, picks, strict=False):
        ax.set_title(f"t = {t[k]:.2f}", fontsize=10)
        ax.tick_params(labelsize=7)
    for ax in axes[len(picks) :]:
        ax.set_axis_off()
    fig.suptitle(f"marginal p_t of {n:,} particles{_dims_note(d)}", fontsize=11)
    return _save_figure(fig, path)


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average whose window shrinks at the ends, so the curve keeps its length."""
    half = window // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(len(y))
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def plot_loss(steps: Any, losses: Any, path: PathLike, ema_losses: Any | None = None) -> Path:
    """Draw a training loss curve: raw values, faint, under a moving average, on a log y-axis.

    The y-axis falls back to linear when a loss is <= 0 (a negative log-likelihood can be).
    Non-finite losses (a diverged step) are left out and counted in the title.

    Args:
        steps: the training steps, shape (K,).
        losses: the loss at each step, shape (K,).
        path: output file.
        ema_losses: optional exponential moving average kept by the trainer, shape (K,),
            drawn as a dashed line.

    Returns:
        The path written.
    """
    x = _as_array(steps, "steps", (1,), "(K,)")
    y = _as_array(losses, "losses", (1,), "(K,)")
    if len(x) != len(y):
        raise FlowmatchError(f"steps has {len(x)} values but losses has {len(y)}; they must match")
    _check_finite(x, "steps")
    ema = None
    if ema_losses is not None:
        ema = _as_array(ema_losses, "ema_losses", (1,), "(K,)")
        if len(ema) != len(y):
            raise FlowmatchError(f"ema_losses has {len(ema)} values but losses has {len(y)}")
    ok = np.isfinite(y)
    if not ok.any():
        raise FlowmatchError("losses has no finite value to plot")
    x_ok, y_ok = x[ok], y[ok]
    ema_ok = None if ema is None else np.isfinite(ema)
    positive = bool((y_ok > 0).all()) and (ema is None or bool((ema[ema_ok] > 0).all()))
    window = int(np.clip(len(y_ok) // 25, 1, 1_000))
    # The average runs over values clipped to their 0.5-99.5 percentiles, so a rare spike
    # shows in the raw line without bending the smooth one; on a log axis it averages the logs
    # (a geometric mean), which is what the eye averages there.
    clipped = np.clip(y_ok, *np.percentile(y_ok, [0.5, 99.5]))
    if positive:
        smooth = np.exp(_moving_average(np.log(clipped), window))
    else:
        smooth = _moving_average(clipped, window)
    fig, (ax,) = _new_figure(panel=(6.5, 3.8))
    ax.plot(x_ok, y_ok, color=NOISE_COLOR, alpha=0.3, linewidth=0.8, label="loss")
    if window > 1:
        ax.plot(x_ok, smooth, color=NOISE_COLOR, linewidth=1.8, label=f"moving average ({window})")
    if ema is not None:
        ax.plot(x[ema_ok], ema[ema_ok], color=SAMPLE_COLOR, linewidth=1.4, ls="--", label="EMA")
    # Limits hold the smooth curve and all but the most extreme raw values, so one early spike
    # does not flatten the rest of the run.
    lo = min(float(np.percentile(y_ok, 0.5)), float(smooth.min()))
    hi = max(float(np.percentile(y_ok, 99.5)), float(smooth.max()))
    if positive:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_yscale("log")
        ax.set_ylim(lo / 1.15, hi * 1.15)
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        # label the 2, 3, ... ticks too when the curve spans less than about a decade
        ax.yaxis.set_minor_formatter(plain if hi / lo < 12 else NullFormatter())
    else:
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi), 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + ("" if positive else " (linear scale: some values <= 0)"))
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(which="both", labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    skipped = int((~ok).sum())
    note = f", {skipped} non-finite skipped" if skipped else ""
    ax.set_title(f"training loss (last {y_ok[-1]:.4g}{note})", fontsize=10)
    return _save_figure(fig, path)


def plot_density(
    xx: Any,
    yy: Any | None,
    log_density: Any,
    path: PathLike,
    data: Any | None = None,
    *,
    log: bool = False,
    title: str | None = None,
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
        fig, (ax,) = _new_figure(panel=(5.2, 4.4))
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
    return _save_figure(fig, path)


def save_image_grid(
    images: Any, path: PathLike, nrow: int | None = None, *, scale: int | None = None
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

    Returns:
        The path written.

    Example:
        >>> import tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = save_image_grid(np.random.rand(16, 1, 8, 8), f"{tmp}/grid.png")
        ...     out.name
        'grid.png'
    """
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
    if per_row < 1:
        raise FlowmatchError(f"nrow must be >= 1, got {nrow}")
    if scale is None:
        scale = max(1, 96 // max(h, w))
    if scale < 1:
        raise FlowmatchError(f"scale must be >= 1, got {scale}")
    lo, hi = float(arr.min()), float(arr.max())
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

    suffix = Path(path).suffix.lower()
    known = Image.registered_extensions()  # e.g. {".png": "PNG", ...}
    if suffix and suffix not in known:
        raise FlowmatchError(f"cannot write an image as {suffix!r} ({path}); use .png")
    img = Image.fromarray(pixels[..., 0] if c == 1 else pixels)  # uint8: mode L or RGB
    return _atomic_write(path, lambda fh: img.save(fh, format=known.get(suffix, "PNG")))


def __getattr__(name: str) -> Any:
    # animate_path lives in flowmatch.viz.animation, which imports the helpers above; it is
    # also reachable from here for callers that import it from this module.
    if name == "animate_path":
        from flowmatch.viz.animation import animate_path

        return animate_path
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
