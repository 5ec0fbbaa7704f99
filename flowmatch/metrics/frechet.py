"""The Fréchet distance between two sets of feature vectors (FID in a chosen feature space)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.metrics.wasserstein import gaussian_w2

__all__ = ["frechet_distance", "gaussian_frechet"]


def gaussian_frechet(
    m1: Tensor | np.ndarray,
    S1: Tensor | np.ndarray,
    m2: Tensor | np.ndarray,
    S2: Tensor | np.ndarray,
) -> float:
    """d^2 = |m1 - m2|^2 + tr(S1 + S2 - 2 (S2^{1/2} S1 S2^{1/2})^{1/2}) between two Gaussians.

    This is the *squared* 2-Wasserstein distance between N(m1, S1) and N(m2, S2), the number
    that FID reports.

    Example:
        >>> import numpy as np
        >>> round(gaussian_frechet(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)), 6)
        2.0
    """
    return gaussian_w2(m1, S1, m2, S2) ** 2


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between feature sets a (N, F) and b (M, F), each fit by a Gaussian.

    With sample means m and covariances S (divided by N - 1) of each set,
    d^2 = |m_a - m_b|^2 + tr(S_a + S_b - 2 (S_b^{1/2} S_a S_b^{1/2})^{1/2}), in float64.
    Like any plug-in estimate it is biased upwards for finite N (two independent draws of
    the same distribution give d^2 > 0), so compare a model's value with that of real data
    of the same size (the "real-data floor") rather than with 0.

    Args:
        a: first features (N, F), N >= 2.
        b: second features (M, F), M >= 2.

    Returns:
        d^2 (squared, as FID), a float.

    References:
        Fréchet, "Sur la distance de deux lois de probabilité" (1957); Heusel et al., "GANs
        Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium" (2017).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(20000, 2, generator=g, dtype=torch.float64)
        >>> round(frechet_distance(x, 2 * x + 1), 1)  # |1|^2 * 2 + 2 * (2 - 1)^2
        4.0
    """
    stats = []
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[0] < 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise FlowmatchError(f"features {name} must have shape (N >= 2, F), got {got}")
        x64 = x.detach().cpu().double().numpy()
        if not np.isfinite(x64).all():
            raise FlowmatchError(f"features {name} contain NaN or Inf")
        stats.append((x64.mean(axis=0), np.cov(x64, rowvar=False).reshape(x64.shape[1], -1)))
    if stats[0][0].shape != stats[1][0].shape:
        raise FlowmatchError(
            f"features have sizes {a.shape[1]} and {b.shape[1]}; use the same feature map"
        )
    return gaussian_frechet(*stats[0], *stats[1])
