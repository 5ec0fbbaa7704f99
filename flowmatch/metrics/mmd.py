"""Maximum mean discrepancy with Gaussian RBF kernels, and its closed form between Gaussians."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int, check_points
from flowmatch.metrics.wasserstein import _as_gaussian

__all__ = [
    "DEFAULT_BANDWIDTH_SCALES",
    "MAX_POINTS",
    "MEDIAN_POINTS",
    "gaussian_mmd2",
    "median_distance",
    "mmd",
]

DEFAULT_BANDWIDTH_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Default bandwidths, as multiples of the median pairwise distance of the pooled sample."""

MAX_POINTS = 5000
"""Each set is subsampled (without replacement, seeded) to at most this many points."""

MEDIAN_POINTS = 1000
"""The median pairwise distance uses at most this many pooled points, half from each set."""

_CHUNK = 1024  # rows of the kernel matrix held at once: 1024 x 5000 float64 = 40 MB


def mmd(
    x: Tensor,
    y: Tensor,
    bandwidths: Sequence[float] | None = None,
    *,
    max_points: int = MAX_POINTS,
    seed: int = 0,
) -> float:
    """Squared maximum mean discrepancy, unbiased, with a sum of Gaussian RBF kernels.

    With k(a, b) = sum_l exp(-|a - b|^2 / (2 l^2)) over the bandwidths l, the unbiased
    U-statistic is

        MMD^2 = 1/(N(N-1)) sum_{i!=j} k(x_i, x_j) + 1/(M(M-1)) sum_{i!=j} k(y_i, y_j)
                - 2/(NM) sum_{i,j} k(x_i, y_j),

    which can be slightly negative when the two distributions agree. By default the
    bandwidths are ``DEFAULT_BANDWIDTH_SCALES`` times the median pairwise distance of the
    pooled sample (at most ``MEDIAN_POINTS // 2`` seeded draws from each set; 1 if that
    median is 0), which makes the value invariant to rescaling both sets; pass fixed
    ``bandwidths`` to compare values across runs. The estimate is symmetric in x and y.
    It is computed in float64 on the CPU in chunks of kernel rows, so memory stays
    O(``max_points``) per row. Samples of shape (N, ...) are
    flattened to (N, D).

    Args:
        x: (N, ...) first set, N >= 2, finite.
        y: (M, ...) second set, M >= 2, finite, with the same number of features as ``x``.
        bandwidths: kernel length scales l > 0; None for the median heuristic above.
        max_points: a set larger than this is replaced by a random subset of this size.
        seed: seed of every subsample (each set's depends only on its size and the seed), so
            that repeated calls agree.

    Returns:
        The unbiased estimate of MMD^2 (squared, may be slightly negative).

    Raises:
        FlowmatchError: on empty, non-finite or too small sets, differing feature counts,
            or non-positive bandwidths.

    References:
        Gretton et al., "A Kernel Two-Sample Test" (JMLR 2012).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g)
        >>> abs(mmd(x, y)) < 0.05 < mmd(x, y + 2.0)
        True
    """
    xs, ys = _as_matrix(x, "x"), _as_matrix(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise FlowmatchError(
            f"x has {xs.shape[1]} features per sample but y has {ys.shape[1]}; "
            "compare sets of the same dimension"
        )
    check_int(max_points, "max_points", minimum=2)
    xs, ys = _subsample(xs, max_points, seed), _subsample(ys, max_points, seed)
    if bandwidths is None:
        half = MEDIAN_POINTS // 2
        pooled = torch.cat([_subsample(xs, half, seed), _subsample(ys, half, seed)])
        median = median_distance(pooled, seed=seed)
        scales = [s * median for s in DEFAULT_BANDWIDTH_SCALES]
    else:
        scales = [float(l) for l in bandwidths]
        if not scales or not all(math.isfinite(l) and l > 0 for l in scales):
            raise FlowmatchError(f"bandwidths must be positive numbers, got {list(bandwidths)}")
    inv_two_l2 = [1.0 / (2.0 * l * l) for l in scales]
    n, m = len(xs), len(ys)
    kxx = _kernel_sum(xs, xs, inv_two_l2, same=True) / (n * (n - 1))
    kyy = _kernel_sum(ys, ys, inv_two_l2, same=True) / (m * (m - 1))
    kxy = _kernel_sum(xs, ys, inv_two_l2, same=False) / (n * m)
    return kxx + kyy - 2.0 * kxy


def median_distance(z: Tensor, *, seed: int = 0) -> float:
    """Median Euclidean distance between distinct points of ``z``, or 1.0 if it is 0.

    Args:
        z: (N, D) points; above ``MEDIAN_POINTS`` a random subset of that size is used.
        seed: seed of that subset.

    Returns:
        The (lower) median of |z_i - z_j| over i < j.

    Example:
        >>> median_distance(torch.tensor([[0.0], [1.0], [3.0]]))
        2.0
    """
    z = _subsample(z, MEDIAN_POINTS, seed)
    rows, cols = torch.triu_indices(len(z), len(z), offset=1)
    distances = torch.cdist(z, z)[rows, cols]  # (N(N-1)/2,)
    median = float(distances.median()) if distances.numel() else 0.0
    return median if median > 0 else 1.0


def gaussian_mmd2(
    m1: Tensor | np.ndarray,
    S1: Tensor | np.ndarray,
    m2: Tensor | np.ndarray,
    S2: Tensor | np.ndarray,
    bandwidth: float,
) -> float:
    """Squared MMD between N(m1, S1) and N(m2, S2) for one Gaussian RBF kernel, exactly.

    For X ~ N(a, A), Y ~ N(b, B) independent and k(x, y) = exp(-|x - y|^2 / (2 l^2)),

        E k(X, Y) = det(I + (A + B) / l^2)^(-1/2) exp(-1/2 (a - b)^T (l^2 I + A + B)^(-1) (a - b)),

    and MMD^2 = E k(X, X') + E k(Y, Y') - 2 E k(X, Y).

    Args:
        m1: (D,) first mean.
        S1: (D, D) first covariance.
        m2: (D,) second mean.
        S2: (D, D) second covariance.
        bandwidth: the kernel length scale l > 0.

    Returns:
        MMD^2 (squared), what :func:`mmd` estimates with ``bandwidths=[bandwidth]``.

    References:
        Gretton et al., "A Kernel Two-Sample Test" (JMLR 2012).

    Example:
        >>> import numpy as np
        >>> gaussian_mmd2(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), 1.0)
        0.0
    """
    m1_, S1_ = _as_gaussian(m1, S1, "1")
    m2_, S2_ = _as_gaussian(m2, S2, "2")
    if len(m1_) != len(m2_):
        raise FlowmatchError(f"the Gaussians have dimensions {len(m1_)} and {len(m2_)}; use one D")
    if not (math.isfinite(bandwidth) and bandwidth > 0):
        raise FlowmatchError(f"bandwidth must be a positive number, got {bandwidth!r}")
    zero = np.zeros_like(m1_)
    kxx = _expected_rbf(zero, 2 * S1_, bandwidth)
    kyy = _expected_rbf(zero, 2 * S2_, bandwidth)
    kxy = _expected_rbf(m1_ - m2_, S1_ + S2_, bandwidth)
    return kxx + kyy - 2.0 * kxy


def _expected_rbf(d: np.ndarray, C: np.ndarray, l: float) -> float:
    """E exp(-|Z|^2 / (2 l^2)) for Z ~ N(d, C)."""
    eye = np.eye(len(d))
    _, logdet = np.linalg.slogdet(eye + C / l**2)
    quad = d @ np.linalg.solve(l**2 * eye + C, d)
    return float(np.exp(-0.5 * logdet - 0.5 * quad))


def _as_matrix(x: Tensor, name: str) -> Tensor:
    """Check an (N, ...) batch of at least 2 points and return it as (N, D) float64 on the CPU."""
    check_points(x, name)
    if len(x) < 2:
        raise FlowmatchError(f"{name} has {len(x)} sample; the unbiased MMD needs at least 2")
    return x.detach().reshape(len(x), -1).to("cpu", torch.float64)


def _subsample(z: Tensor, limit: int, seed: int) -> Tensor:
    """At most ``limit`` rows of ``z``, drawn without replacement; depends on len(z) and seed."""
    if len(z) <= limit:
        return z
    generator = torch.Generator().manual_seed(seed)
    return z[torch.randperm(len(z), generator=generator)[:limit]]


def _kernel_sum(a: Tensor, b: Tensor, inv_two_l2: list[float], *, same: bool) -> float:
    """sum_{i,j} sum_l exp(-|a_i - b_j|^2 / (2 l^2)), without i == j when ``same``."""
    b_sq = (b * b).sum(1)  # (M,)
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, len(a), _CHUNK):
        rows = a[start : start + _CHUNK]  # (C, D)
        d2 = ((rows * rows).sum(1, keepdim=True) + b_sq - 2.0 * rows @ b.T).clamp_(min=0.0)
        if same:
            d2.diagonal(offset=start).fill_(math.inf)  # exp(-inf) = 0 drops the i == j terms
        for c in inv_two_l2:
            total += torch.exp(d2 * -c).sum()
    return float(total)
