"""The figure of a network's error against the optimal velocity v*, in bins of t."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flowmatch.errors import FlowmatchError
from flowmatch.viz._common import NOISE_COLOR, SAMPLE_COLOR, PathLike, _new_figure, _save_figure

__all__ = ["plot_oracle_error"]


def plot_oracle_error(
    t_lo: Any,
    t_hi: Any,
    relative_error: Any,
    path: PathLike,
    title: str | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Draw E|v_theta - v*|^2 / E|v*|^2 per t-bin as steps on a log axis (t = 0 noise, 1 data).

    Args:
        t_lo: (K,) lower edges of the bins.
        t_hi: (K,) upper edges.
        relative_error: (K,) positive relative errors.
        path: output file; the suffix picks the format.
        title: optional title.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = plot_oracle_error([0, 0.5], [0.5, 1], [0.01, 0.2], f"{tmp}/oracle.png")
        ...     out.stat().st_size > 0
        True
    """
    lo, hi, err = (np.asarray(a, dtype=float).reshape(-1) for a in (t_lo, t_hi, relative_error))
    if not (len(lo) == len(hi) == len(err) > 0):
        raise FlowmatchError(
            f"t_lo, t_hi and relative_error must have one value per bin, got {len(lo)}, "
            f"{len(hi)} and {len(err)}"
        )
    if not (np.isfinite(err).all() and (err > 0).all()):
        raise FlowmatchError("relative_error must be finite and positive")
    fig, (ax,) = _new_figure(panel=(6.0, 3.6))
    edges = np.append(lo, hi[-1])
    ax.stairs(err, edges, color=SAMPLE_COLOR, linewidth=1.8, label="network vs v*")
    ax.axhline(1.0, color=NOISE_COLOR, ls="--", linewidth=1.0, label="v = 0 (error = 1)")
    ax.set_yscale("log")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("t (0: noise, 1: data)")
    ax.set_ylabel("E|v_theta - v*|^2 / E|v*|^2")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save_figure(fig, path, overwrite)
