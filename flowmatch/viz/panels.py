"""Several sets of 2-D points side by side on shared axes: data against each model's samples."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flowmatch.errors import FlowmatchError
from flowmatch.viz._common import (
    DATA_COLOR,
    SAMPLE_COLOR,
    PathLike,
    _frame_2d,
    _limits,
    _new_figure,
    _points,
    _save_figure,
    _scatter,
)

__all__ = ["plot_sample_panels"]


def plot_sample_panels(
    panels: Mapping[str, Any],
    path: PathLike,
    *,
    reference: str | None = None,
    title: str | None = None,
    ncols: int | None = None,
    overwrite: bool = True,
) -> Path:
    """One scatter per named set of (N, 2) points, all on the same axis limits.

    Args:
        panels: panel title -> points (N, D >= 2; the first two coordinates are drawn), in
            the order to draw them.
        path: output file (the suffix picks the format).
        reference: the title of the panel drawn in the data colour (e.g. ``"data"``); the
            limits come from it when given, else from all panels together.
        title: optional title over the figure.
        ncols: panels per row (all in one row by default).
        overwrite: replace an existing file; if False, refuse one (``FileExistsError``).

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> rng = np.random.default_rng(0)
        >>> sets = {"data": rng.normal(size=(300, 2)), "model": rng.normal(size=(300, 2))}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     plot_sample_panels(sets, f"{tmp}/p.png", reference="data").stat().st_size > 0
        True
    """
    if not panels:
        raise FlowmatchError("panels is empty; pass at least one named set of points")
    arrays = {name: _points(x, f"panel {name!r}") for name, x in panels.items()}
    for name, x in arrays.items():
        if x.shape[1] < 2:
            raise FlowmatchError(f"panel {name!r} has {x.shape[1]} dims; these panels need 2")
    if reference is not None and reference not in arrays:
        raise FlowmatchError(f"reference {reference!r} is not one of the panels {list(arrays)}")
    basis = arrays[reference] if reference is not None else np.concatenate(list(arrays.values()))
    lims = _limits(basis[:, :2], q=0.1, pad=0.15)
    n = len(arrays)
    cols = n if ncols is None else max(1, min(int(ncols), n))
    rows = -(-n // cols)
    fig, axes = _new_figure(cols, rows, panel=(3.0, 3.0))
    for ax, (name, x) in zip(axes, arrays.items(), strict=False):
        _scatter(ax, x, DATA_COLOR if name == reference else SAMPLE_COLOR)
        _frame_2d(ax, lims)
        ax.set_title(name, fontsize=9)
    for ax in axes[n:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    return _save_figure(fig, path, overwrite)
