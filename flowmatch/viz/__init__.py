"""Figures and animations of data, samples, probability paths, losses, densities and quality.

Each function takes numpy arrays, writes one file atomically and returns its path (replacing an
existing file, or refusing it with ``overwrite=False``); matplotlib and Pillow are only imported
when a function is called.
"""

from flowmatch.viz.animation import animate_path
from flowmatch.viz.figures import (
    plot_loss,
    plot_path_snapshots,
    plot_samples,
    plot_trajectories,
)
from flowmatch.viz.grids import image_grid_bytes, plot_density, save_image_grid
from flowmatch.viz.nfe import plot_w2_nfe
from flowmatch.viz.oracle import plot_oracle_error
from flowmatch.viz.robot import plot_instructed_rollouts, plot_rollouts

__all__ = [
    "animate_path",
    "image_grid_bytes",
    "plot_density",
    "plot_instructed_rollouts",
    "plot_loss",
    "plot_oracle_error",
    "plot_path_snapshots",
    "plot_rollouts",
    "plot_samples",
    "plot_trajectories",
    "plot_w2_nfe",
    "save_image_grid",
]
