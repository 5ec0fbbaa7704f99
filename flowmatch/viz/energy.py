"""The figure of an energy fit: the target density, the flow's density and its samples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from flowmatch.errors import FlowmatchError
from flowmatch.viz._common import (
    SAMPLE_COLOR,
    PathLike,
    _as_array,
    _check_finite,
    _new_figure,
    _points,
    _save_figure,
    _scatter,
)

if TYPE_CHECKING:
    from flowmatch.data.energies import Energy
    from flowmatch.flows.base import Flow

__all__ = ["plot_energy_fit", "write_energy_fit_figure"]


def plot_energy_fit(
    xs: Any,
    ys: Any,
    log_p: Any,
    log_q: Any,
    samples: Any,
    path: PathLike,
    *,
    title: str | None = None,
    overwrite: bool = True,
) -> PathLike:
    """Three panels on the same box: p = exp(-U) / Z, the flow's q, and draws of q.

    Both densities share one colour scale, from 0 to the target's maximum, so equal colours
    mean equal density (the flow's density is clipped where it exceeds the target's peak).

    Args:
        xs: (W,) grid axis along z1.
        ys: (H,) grid axis along z2.
        log_p: (H, W) normalized log target on the grid.
        log_q: (H, W) the flow's log-density on the grid.
        samples: (N, 2) draws of q.
        path: output file (the suffix picks the format).
        title: optional title over the panels.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> x = np.linspace(-3, 3, 50)
        >>> lp = -0.5 * (x[None] ** 2 + x[:, None] ** 2) - np.log(2 * np.pi)
        >>> pts = np.random.default_rng(0).normal(size=(300, 2))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_energy_fit(x, x, lp, lp, pts, f"{tmp}/fit.png").stat().st_size > 0
        True
    """
    x = _as_array(xs, "xs", (1,), "(W,)")
    y = _as_array(ys, "ys", (1,), "(H,)")
    lp = _as_array(log_p, "log_p", (2,), "(H, W)")
    lq = _as_array(log_q, "log_q", (2,), "(H, W)")
    for arr, name in ((x, "xs"), (y, "ys")):
        _check_finite(arr, name)
    for arr, name in ((lp, "log_p"), (lq, "log_q")):
        _check_finite(arr, name, allow_neg_inf=True)
        if arr.shape != (len(y), len(x)):
            raise FlowmatchError(
                f"{name} must have shape (len(ys), len(xs)) = {(len(y), len(x))}, got {arr.shape}"
            )
    pts = _points(samples, "samples")
    if pts.shape[1] != 2:
        raise FlowmatchError(f"samples must have shape (N, 2), got {pts.shape}")
    with np.errstate(over="ignore", under="ignore"):
        p, q = np.exp(lp), np.exp(lq)
    top = float(max(np.nanmax(p), 1e-300))  # q is clipped there: its spikes would hide p
    fig, axes = _new_figure(3, panel=(3.8, 3.6))
    for ax, values, label in ((axes[0], p, "target p ∝ exp(-U)"), (axes[1], q, "flow density q")):
        ax.pcolormesh(x, y, values, cmap="viridis", shading="auto", vmin=0, vmax=top,
                      rasterized=True)  # fmt: skip
        ax.set_title(label, fontsize=10)
    inside = pts[
        (pts[:, 0] >= x.min()) & (pts[:, 0] <= x.max())
        & (pts[:, 1] >= y.min()) & (pts[:, 1] <= y.max())
    ]  # fmt: skip
    _scatter(axes[2], inside if len(inside) else pts[:1], SAMPLE_COLOR)
    axes[2].set_title(f"draws of q ({len(inside):,} of {len(pts):,} in the box)", fontsize=10)
    for ax in axes:
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(y.min(), y.max())
        ax.set_aspect("equal", adjustable="box")
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save_figure(fig, path, overwrite)


def write_energy_fit_figure(
    flow: Flow,
    energy: Energy,
    path: PathLike,
    *,
    grid: int = 200,
    n: int = 5000,
    seed: int = 0,
    overwrite: bool = True,
) -> PathLike:
    """Evaluate a fitted flow and its target on the energy's box and draw :func:`plot_energy_fit`.

    Args:
        flow: a 2-D flow.
        energy: the :class:`~flowmatch.data.energies.Energy` it was fitted to.
        path: output file.
        grid: grid points per axis.
        n: draws of q to scatter.
        seed: their seed.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.
    """
    import torch

    from flowmatch.flows.variational import box_grid, grid_log_normalizer

    axes, points, _ = box_grid(energy.box, grid)
    with torch.no_grad():
        log_p = -energy(points) - grid_log_normalizer(energy, energy.box)
        log_q = flow.log_prob(points.float()).double()
        samples = flow.sample(n, seed=seed)
    return plot_energy_fit(
        axes[0].numpy(),
        axes[1].numpy(),
        log_p.reshape(grid, grid).numpy(),
        log_q.reshape(grid, grid).numpy(),
        samples.numpy(),
        path,
        title=f"{energy.name}: target, planar flow, samples",
        overwrite=overwrite,
    )
