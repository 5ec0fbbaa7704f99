"""The 2-Wasserstein distance: exact between empirical sets, closed form between Gaussians."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_points

__all__ = ["EMD_MAX_ITER", "W2_BYTES", "gaussian_w2", "wasserstein2", "wasserstein2_many"]

EMD_MAX_ITER = 10_000_000
"""Network-simplex iteration cap for ``ot.emd2``; 5000 x 5000 points need about 10^6."""

W2_BYTES = 16
"""Memory per pair of points of the exact W2: its float64 cost matrix and transport plan."""


def wasserstein2(x: Tensor, y: Tensor) -> float:
    """Exact 2-Wasserstein distance between two empirical sets with uniform weights.

    W2(x, y)^2 = min_P sum_ij P_ij |x_i - y_j|^2 over couplings P with row sums 1/N and
    column sums 1/M, solved exactly as a linear program in float64 on the CPU (O(N M) memory,
    roughly cubic time: keep N and M to a few thousand). Samples of shape (N, ...) are
    flattened to (N, D).

    Args:
        x: (N, ...) first set, finite.
        y: (M, ...) second set, finite, with the same number of features as ``x``.

    Returns:
        W2 (not squared), in the units of the samples.

    Raises:
        FlowmatchError: if a set is empty, non-finite, or the feature counts differ.

    References:
        Villani, "Optimal Transport: Old and New" (2009); Bonneel et al., "Displacement
        Interpolation Using Lagrangian Mass Transport" (2011) for the network simplex.

    Example:
        >>> import torch
        >>> wasserstein2(torch.zeros(2, 2), torch.tensor([[3.0, 4.0], [3.0, 4.0]]))
        5.0
    """
    xs, ys = _as_matrix(x, "x"), _as_matrix(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise FlowmatchError(
            f"x has {xs.shape[1]} features per sample but y has {ys.shape[1]}; "
            "compare sets of the same dimension"
        )
    a = np.full(len(xs), 1.0 / len(xs))
    b = np.full(len(ys), 1.0 / len(ys))
    import ot  # POT and SciPy load on first use: importing flowmatch stays quick
    from scipy.spatial.distance import cdist

    cost = cdist(xs, ys, metric="sqeuclidean")  # (N, M), exact differences, no cancellation
    w2_squared = ot.emd2(a, b, cost, numItermax=EMD_MAX_ITER)
    return math.sqrt(max(float(w2_squared), 0.0))


def wasserstein2_many(pairs: Sequence[tuple[Tensor, Tensor]]) -> list[float]:
    """:func:`wasserstein2` of each (x, y) pair, several at once on threads.

    The exact solver releases Python's lock, so on k cores k pairs take about the time of one.
    The threads are at most the cores this process may run on (not torch's thread count, which
    training may have set to 1 for small models) and as many as the available memory holds,
    each needing the float64 cost matrix and transport plan of its pair; the values are those
    of :func:`wasserstein2`, in the order given.

    Example:
        >>> import torch
        >>> wasserstein2_many([(torch.zeros(2, 1), torch.ones(2, 1)), (torch.zeros(1, 2),) * 2])
        [1.0, 0.0]
    """
    from flowmatch.errors import available_memory, usable_cores

    if not pairs:
        return []
    largest = max(W2_BYTES * len(x) * len(y) for x, y in pairs)
    workers = min(len(pairs), usable_cores(), max(1, available_memory() // largest))
    if workers == 1:
        return [wasserstein2(x, y) for x, y in pairs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda pair: wasserstein2(*pair), pairs))


def gaussian_w2(
    m1: Tensor | np.ndarray,
    S1: Tensor | np.ndarray,
    m2: Tensor | np.ndarray,
    S2: Tensor | np.ndarray,
) -> float:
    """2-Wasserstein distance between N(m1, S1) and N(m2, S2), in closed form.

    W2^2 = |m1 - m2|^2 + tr(S1 + S2 - 2 (S2^{1/2} S1 S2^{1/2})^{1/2}), with the square
    roots of symmetric positive semi-definite matrices taken by eigen-decomposition.

    Args:
        m1: (D,) first mean.
        S1: (D, D) first covariance, symmetric positive semi-definite.
        m2: (D,) second mean.
        S2: (D, D) second covariance, symmetric positive semi-definite.

    Returns:
        W2 (not squared).

    References:
        Dowson & Landau, "The Frechet distance between multivariate normal distributions"
        (1982); Givens & Shortt, "A class of Wasserstein metrics for probability
        distributions" (1984).

    Example:
        >>> import numpy as np
        >>> round(gaussian_w2(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)), 6)
        1.414214
    """
    m1, S1 = _as_gaussian(m1, S1, "1")
    m2, S2 = _as_gaussian(m2, S2, "2")
    if len(m1) != len(m2):
        raise FlowmatchError(f"the Gaussians have dimensions {len(m1)} and {len(m2)}; use one D")
    root2 = _psd_sqrt(S2)
    cross = _psd_sqrt(root2 @ S1 @ root2)
    w2_squared = np.sum((m1 - m2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * np.trace(cross)
    return math.sqrt(max(float(w2_squared), 0.0))


def _as_matrix(x: Tensor, name: str) -> np.ndarray:
    """Check an (N, ...) batch and return it as an (N, D) float64 array."""
    check_points(x, name)
    return x.detach().reshape(len(x), -1).to("cpu").double().numpy()


def _as_gaussian(
    m: Tensor | np.ndarray, S: Tensor | np.ndarray, which: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return a mean (D,) and covariance (D, D) as float64 arrays, checking shapes."""
    m_, S_ = _as_float64(m), _as_float64(S)
    if m_.ndim != 1 or S_.shape != (len(m_), len(m_)):
        raise FlowmatchError(
            f"m{which} must have shape (D,) and S{which} shape (D, D), "
            f"got {m_.shape} and {S_.shape}"
        )
    if not (np.isfinite(m_).all() and np.isfinite(S_).all()):
        raise FlowmatchError(f"m{which} and S{which} must be finite")
    return m_, S_


def _as_float64(v: Tensor | np.ndarray) -> np.ndarray:
    """A tensor or array-like as a float64 NumPy array."""
    if isinstance(v, Tensor):
        return v.detach().to("cpu").double().numpy()
    return np.asarray(v, dtype=np.float64)


def _psd_sqrt(S: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (negative rounding clipped)."""
    eigenvalues, vectors = np.linalg.eigh((S + S.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T
