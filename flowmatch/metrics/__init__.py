"""Sample-quality metrics: distances between a generated and a reference set of points.

Example:
    >>> import torch
    >>> from flowmatch.metrics import wasserstein2
    >>> round(wasserstein2(torch.zeros(4, 3), torch.ones(4, 3)) ** 2, 12)
    3.0
"""

from flowmatch.metrics.frechet import frechet_distance, gaussian_frechet
from flowmatch.metrics.mmd import (
    DEFAULT_BANDWIDTH_SCALES,
    MAX_POINTS,
    MEDIAN_POINTS,
    gaussian_mmd2,
    median_distance,
    mmd,
)
from flowmatch.metrics.straightness import (
    PathStatistics,
    normalized_path_energy,
    path_statistics,
)
from flowmatch.metrics.wasserstein import (
    EMD_MAX_ITER,
    W2_BYTES,
    gaussian_w2,
    wasserstein2,
    wasserstein2_many,
)

__all__ = [
    "DEFAULT_BANDWIDTH_SCALES",
    "EMD_MAX_ITER",
    "MAX_POINTS",
    "MEDIAN_POINTS",
    "W2_BYTES",
    "PathStatistics",
    "frechet_distance",
    "gaussian_frechet",
    "gaussian_mmd2",
    "gaussian_w2",
    "median_distance",
    "mmd",
    "normalized_path_energy",
    "path_statistics",
    "wasserstein2",
    "wasserstein2_many",
]
