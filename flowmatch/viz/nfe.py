"""Sample quality against cost: W2 of a fixed-grid solver at each NFE, beside the converged one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowmatch.errors import FlowmatchError
from flowmatch.viz._common import (
    DATA_COLOR,
    NOISE_COLOR,
    SAMPLE_COLOR,
    PathLike,
    _as_array,
    _check_finite,
    _new_figure,
    _save_figure,
)

__all__ = ["plot_w2_nfe"]

MARKERS = "sD^vP*Xh"  # one per other solver, in the order they first appear


def plot_w2_nfe(
    nfe: Any,
    w2: Any,
    path: PathLike,
    *,
    solver: str = "euler",
    converged: tuple[float, float] | None = None,
    floor: float | None = None,
    others: Sequence[tuple[str, float, float]] = (),
    title: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Draw W2 against the NFE of one fixed-grid solver, on log-log axes.

    A dashed line marks the converged W2 (an adaptive solver's) and a dotted one the data floor
    (the W2 between two independent draws of the data: what a perfect model scores); other
    solvers' results are single markers.

    Args:
        nfe: the NFE of each point of the curve, shape (K,), all > 0.
        w2: the W2 at each NFE, shape (K,); non-finite values (a diverged solve) are left out.
        path: output file.
        solver: the curve's solver, for the legend.
        converged: (NFE, W2) of the converged solve, or None.
        floor: the data floor's W2, or None.
        others: (solver label, NFE, W2) of other settings drawn as markers.
        title: the title; "W2 vs NFE" if omitted.
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = plot_w2_nfe([1, 2, 4, 8], [0.9, 0.5, 0.3, 0.25], f"{tmp}/w2.png",
        ...                       converged=(120, 0.24), floor=0.05)
        ...     out.name
        'w2.png'
    """
    x = _as_array(nfe, "nfe", (1,), "(K,)")
    y = _as_array(w2, "w2", (1,), "(K,)")
    if x.shape != y.shape:
        raise FlowmatchError(f"nfe has {len(x)} values but w2 has {len(y)}; they must match")
    _check_finite(x, "nfe")
    if not (x > 0).all():
        raise FlowmatchError(f"nfe must be > 0 for a log axis, got {x.min():g}")
    ok = np.isfinite(y) & (y > 0)
    order = np.argsort(x[ok])
    fig, (ax,) = _new_figure(panel=(6.0, 3.8))
    if ok.any():
        ax.plot(x[ok][order], y[ok][order], "o-", color=NOISE_COLOR, ms=4, label=solver)
    if converged is not None and np.isfinite(converged[1]) and converged[1] > 0:
        ax.axhline(converged[1], color=SAMPLE_COLOR, ls="--", lw=1.2)
        label = f"converged (NFE {converged[0]:g})"
        ax.plot(*converged, "o", color=SAMPLE_COLOR, ms=6, label=label)
    if floor is not None and np.isfinite(floor) and floor > 0:
        ax.axhline(floor, color=DATA_COLOR, ls=":", lw=1.5, label="data floor")
    styles: dict[str, str] = {}
    for label, n, w in others:
        if not (np.isfinite(w) and w > 0 and n > 0):
            continue
        new = label not in styles
        marker = styles.setdefault(label, MARKERS[len(styles) % len(MARKERS)])
        ax.plot(n, w, marker, color="#555555", ms=6, ls="none", label=label if new else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("NFE (velocity evaluations)")
    ax.set_ylabel("W2 to held-out data")
    ax.grid(True, which="both", alpha=0.25)
    ax.tick_params(which="both", labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    skipped = int((~ok).sum())
    note = f" ({skipped} non-finite left out)" if skipped else ""
    ax.set_title((title or "W2 vs NFE") + note, fontsize=10)
    return _save_figure(fig, path, overwrite)
