"""Static figures: samples against data, particle paths, snapshots of p_t and the loss.

Every function takes numpy arrays (a CPU ``torch.Tensor`` is accepted too), writes exactly one
file atomically (a hidden temporary file in the same folder, then ``os.replace``) and returns its
:class:`~pathlib.Path`; with ``overwrite=False`` it refuses an existing file instead, even one
created while it draws. The file format follows the suffix (``.png`` unless stated otherwise).

Points have shape (N, D). Two-dimensional data is drawn as a scatter with equal aspect; for
D > 2 only the first two coordinates are drawn and the title says so; for D == 1 histograms and
density lines replace the scatter. Time follows the package convention: t = 0 is noise
N(0, I), t = 1 is data.

matplotlib and Pillow are imported inside the functions, so ``import flowmatch`` never pays for
them, and figures are drawn on an explicit Agg canvas, never through ``pyplot``'s global state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from flowmatch.errors import FlowmatchError, check_int
from flowmatch.viz._common import (
    DATA_COLOR,
    MAX_SCATTER,
    NOISE_COLOR,
    PATH_COLOR,
    SAMPLE_COLOR,
    PathLike,
    _as_array,
    _check_finite,
    _count,
    _dims_note,
    _frame_2d,
    _limits,
    _marker_style,
    _n_bins,
    _new_figure,
    _panel_2d,
    _points,
    _save_figure,
    _scatter,
    _subsample,
    _times,
    _trajectory,
)

__all__ = ["plot_loss", "plot_path_snapshots", "plot_samples", "plot_trajectories"]


# ----------------------------------------------------------------------------- figures


def plot_samples(
    data: Any,
    samples: Any,
    path: PathLike,
    title: str | None = None,
    *,
    label: str = "model samples",
    more: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Draw data (left) and model samples (right) side by side on the same axis limits.

    In 2-D each panel takes the shape of the points' box, so wide or tall data fills it.

    Args:
        data: reference points x1, shape (N, D) (or (N,) for D = 1).
        samples: model samples, shape (M, D) with the same D.
        path: output file; the suffix picks the format (png, pdf, svg, ...).
        title: optional title over all panels.
        label: the title of the samples' panel, e.g. the solver that drew them.
        more: further panels, title -> samples (M', D), drawn to the right in order, e.g.
            the same model with a few-step solver.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.

    Example:
        >>> import tempfile, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = plot_samples(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)),
        ...                        f"{tmp}/samples.png", title="example",
        ...                        more={"4 steps": rng.normal(size=(500, 2))})
        ...     out.stat().st_size > 0
        True
    """
    x1 = _points(data, "data")
    panels = {label: _points(samples, "samples")}
    for name, xs in (more or {}).items():
        panels[name] = _points(xs, f"samples {name!r}")
    for name, xs in panels.items():
        if x1.shape[1] != xs.shape[1]:
            raise FlowmatchError(
                f"data has {x1.shape[1]} dims but {name} have {xs.shape[1]}; they must match"
            )
    d = x1.shape[1]
    everything = np.concatenate([x1, *panels.values()])
    if d == 1:
        fig, (ax_data, *ax_models) = _new_figure(1 + len(panels))
        lo, hi = _limits(everything)[0]
        edges = np.linspace(lo, hi, _n_bins(max(len(x) for x in (x1, *panels.values()))) + 1)
        h_data = np.histogram(x1[:, 0], edges, density=True)[0]
        ax_data.stairs(h_data, edges, fill=True, color=DATA_COLOR, alpha=0.6)
        top = h_data.max()
        for ax, xs in zip(ax_models, panels.values(), strict=True):
            h_model = np.histogram(xs[:, 0], edges, density=True)[0]
            ax.stairs(h_model, edges, fill=True, color=SAMPLE_COLOR, alpha=0.6, label="samples")
            ax.stairs(h_data, edges, color=DATA_COLOR, linewidth=1.2, label="data (outline)")
            ax.legend(fontsize=8, frameon=False)
            top = max(top, h_model.max())
        for ax in (ax_data, *ax_models):
            ax.set_xlim(lo, hi)
            ax.set_ylim(0, 1.08 * max(top, 1e-12))
            ax.set_xlabel("x")
            ax.tick_params(labelsize=8)
        ax_data.set_ylabel("density")
    else:
        lims = _limits(everything[:, :2])
        fig, (ax_data, *ax_models) = _new_figure(1 + len(panels), panel=_panel_2d(lims, 4.0, 1.1))
        _scatter(ax_data, x1, DATA_COLOR)
        for ax, xs in zip(ax_models, panels.values(), strict=True):
            _scatter(ax, xs, SAMPLE_COLOR)
        for ax in (ax_data, *ax_models):
            _frame_2d(ax, lims)
    note = _dims_note(d)
    ax_data.set_title(f"data ({_count(len(x1))}){note}", fontsize=10)
    for ax, (name, xs) in zip(ax_models, panels.items(), strict=True):
        ax.set_title(f"{name} ({_count(len(xs))}){note}", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save_figure(fig, path, overwrite)


def plot_trajectories(
    trajectory: Any,
    path: PathLike,
    n_paths: int = 200,
    ts: Any | None = None,
    *,
    overwrite: bool = True,
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
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

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
    lims = _limits(traj[:, :, :2].reshape(-1, min(d, 2)))
    fig, (ax,) = _new_figure(panel=_panel_2d(lims, 5.0, 1.0) if d > 1 else (6.5, 4.0))
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
        _frame_2d(ax, lims)
    handles = [
        ax.scatter([], [], color=NOISE_COLOR, s=20, label="t=0 (noise)"),
        ax.scatter([], [], color=SAMPLE_COLOR, s=20, label="t=1 (samples)"),
    ]
    fig.legend(handles=handles, fontsize=9, loc="outside lower center", ncols=2, frameon=False)
    ax.set_title(
        f"particle paths ({len(lines):,} of {n:,} drawn, {n_steps} steps){_dims_note(d)}",
        fontsize=10,
    )
    return _save_figure(fig, path, overwrite)


def plot_path_snapshots(
    trajectory: Any, ts: Any, path: PathLike, n_panels: int = 6, *, overwrite: bool = True
) -> Path:
    """Draw the marginal p_t at a few times, one panel per time, on shared axis limits.

    The times are picked evenly among ``ts`` and always include the first and the last. In 2-D
    each panel is a histogram of counts (a scatter when there are fewer than 2,000 particles);
    in 1-D a density histogram.

    Args:
        trajectory: positions of shape (T, N, D).
        ts: the T times of the trajectory, shape (T,).
        path: output file.
        n_panels: how many times to show (at most T); at most 6 panels per row.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.
    """
    traj = _trajectory(trajectory)
    n_steps, n, d = traj.shape
    t = _times(ts, n_steps)
    check_int(n_panels, "n_panels")
    picks = np.unique(np.linspace(0, n_steps - 1, min(n_panels, n_steps)).round().astype(int))
    nrows = math.ceil(len(picks) / 6)  # at most 6 per row, rows filled evenly
    ncols = math.ceil(len(picks) / nrows)
    lims = _limits(traj[picks, :, : min(d, 2)].reshape(-1, min(d, 2)))
    panel = _panel_2d(lims, 2.6, 0.8) if d > 1 else (2.6, 2.2)
    fig, axes = _new_figure(ncols, nrows, panel=panel)
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
    return _save_figure(fig, path, overwrite)


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Centered moving average whose window shrinks at the ends, so the curve keeps its length."""
    half = window // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(len(y))
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def plot_loss(
    steps: Any,
    losses: Any,
    path: PathLike,
    ema_losses: Any | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Draw a training loss curve: raw values, faint, under a moving average, on a log y-axis.

    The y-axis falls back to linear when a loss is <= 0 (a negative log-likelihood can be).
    Non-finite losses (a diverged step) are left out and counted in the title.

    Args:
        steps: the training steps, shape (K,).
        losses: the loss at each step, shape (K,).
        path: output file.
        ema_losses: optional exponential moving average kept by the trainer, shape (K,),
            drawn as a dashed line.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

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
    return _save_figure(fig, path, overwrite)
