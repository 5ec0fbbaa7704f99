"""W2 and MMD against Gaussian closed forms, metric properties, and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.metrics import gaussian_mmd2, gaussian_w2, median_distance, mmd, wasserstein2

M1, S1 = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
M2 = torch.tensor([3.0, 0.0], dtype=torch.float64)
S2 = torch.tensor([[0.5, 0.3], [0.3, 2.0]], dtype=torch.float64)


def gaussian_samples(n: int, m: Tensor, S: Tensor, generator: torch.Generator) -> Tensor:
    """(n, D) draws from N(m, S)."""
    z = torch.randn(n, len(m), generator=generator, dtype=torch.float64)
    return m + z @ torch.linalg.cholesky(S).T


def test_gaussian_w2_matches_independent_formulas() -> None:
    # 1-D: W2^2 = (m1 - m2)^2 + (s1 - s2)^2
    assert math.isclose(gaussian_w2([1.0], [[4.0]], [-2.0], [[9.0]]), math.sqrt(9 + 1))
    # general: tr((S1^{1/2} S2 S1^{1/2})^{1/2}) by scipy's sqrtm instead of eigh, either order
    A, B = S1.numpy() * 1.5 + 0.2, S2.numpy()
    root = scipy.linalg.sqrtm(A).real
    cross = np.trace(scipy.linalg.sqrtm(root @ B @ root).real)
    expected = math.sqrt(9 + np.trace(A) + np.trace(B) - 2 * cross)
    assert math.isclose(gaussian_w2(M1, A, M2, B), expected, rel_tol=1e-9)
    assert math.isclose(gaussian_w2(M2, B, M1, A), expected, rel_tol=1e-9)
    assert gaussian_w2(M2, S2, M2, S2) < 1e-7


def test_w2_matches_gaussian_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = gaussian_samples(1000, M1, S1, g), gaussian_samples(1000, M2, S2, g)
    exact = gaussian_w2(M1, S1, M2, S2)  # ~3.06, dominated by the mean shift of 3
    # finite-sample bias of the empirical W2 is positive and a few percent at n = 1000
    assert abs(wasserstein2(x, y) - exact) / exact < 0.1


def test_w2_is_a_metric_on_samples() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 3, generator=g), torch.randn(150, 3, generator=g) + 0.5
    assert wasserstein2(x, x) == 0.0
    assert math.isclose(wasserstein2(x, y), wasserstein2(y, x), rel_tol=1e-9)
    shift = torch.tensor([0.3, -1.2, 2.0])
    assert math.isclose(wasserstein2(x, x + shift), float(shift.norm()), rel_tol=1e-5)


def test_w2_between_point_masses_is_their_distance() -> None:
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[4.0, 6.0]])
    assert math.isclose(wasserstein2(a, b), 5.0, rel_tol=1e-12)
    assert math.isclose(wasserstein2(a.repeat(3, 1), b.repeat(5, 1)), 5.0, rel_tol=1e-12)


def test_w2_flattens_samples() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(50, 2, 2, generator=g), torch.randn(60, 2, 2, generator=g)
    assert wasserstein2(x, y) == wasserstein2(x.reshape(50, 4), y.reshape(60, 4))


def test_gaussian_mmd2_basic_properties() -> None:
    assert gaussian_mmd2(M2, S2, M2, S2, 0.7) == 0.0
    near = gaussian_mmd2(M1, S1, M1 + 0.1, S1, 1.0)
    far = gaussian_mmd2(M1, S1, M1 + 1.0, S1, 1.0)
    assert 0 < near < far
    # 1-D, equal variances s2: MMD^2 = 2 (1 + 2 s2/l^2)^(-1/2) (1 - exp(-d^2 / (2 (l^2 + 2 s2))))
    s2, l, d = 0.5, 1.3, 0.8
    closed = 2 / math.sqrt(1 + 2 * s2 / l**2) * (1 - math.exp(-(d**2) / (2 * (l**2 + 2 * s2))))
    assert math.isclose(gaussian_mmd2([0.0], [[s2]], [d], [[s2]], l), closed, rel_tol=1e-12)


@pytest.mark.parametrize("bandwidth", [0.5, 2.0])
def test_mmd_is_unbiased_for_gaussians(bandwidth: float) -> None:
    g = torch.Generator().manual_seed(3)
    exact = gaussian_mmd2(M1, S1, M1 + torch.tensor([1.0, 0.0]), S2, bandwidth)
    estimates = torch.tensor(
        [
            mmd(
                gaussian_samples(300, M1, S1, g),
                gaussian_samples(300, M1 + torch.tensor([1.0, 0.0]), S2, g),
                [bandwidth],
            )
            for _ in range(20)
        ]
    )
    standard_error = float(estimates.std() / math.sqrt(len(estimates)))
    assert abs(float(estimates.mean()) - exact) < 4 * standard_error
    assert standard_error < 0.1 * exact  # the check above is tight enough to mean something


def test_mmd_separates_distributions() -> None:
    g = torch.Generator().manual_seed(4)
    x, x2 = gaussian_samples(800, M1, S1, g), gaussian_samples(800, M1, S1, g)
    y = gaussian_samples(800, M1 + torch.tensor([0.5, 0.0]), S2, g)
    same, different = mmd(x, x2), mmd(x, y)
    assert abs(same) < 5e-3
    assert different > 20 * abs(same)
    assert math.isclose(mmd(x, y), mmd(y, x), rel_tol=1e-9)


def test_mmd_default_bandwidths_are_scale_invariant() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(700, 2, generator=g, dtype=torch.float64)
    y = torch.randn(600, 2, generator=g, dtype=torch.float64) * 1.5
    assert math.isclose(mmd(10.0 * x, 10.0 * y), mmd(x, y), rel_tol=1e-9)
    assert mmd(x, y) != mmd(x, y, [1.0])


def test_mmd_subsamples_large_sets_deterministically() -> None:
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(600, 2, generator=g), torch.randn(600, 2, generator=g) + 1.0
    small = mmd(x, y, [1.0], max_points=300)
    assert small == mmd(x, y, [1.0], max_points=300)
    assert small != mmd(x, y, [1.0], max_points=300, seed=1)
    assert abs(small - mmd(x, y, [1.0])) < 0.05


def test_median_distance() -> None:
    assert median_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])) == 4.0
    assert median_distance(torch.zeros(5, 2)) == 1.0  # degenerate: fall back to 1


@pytest.mark.parametrize("metric", [wasserstein2, mmd])
@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.zeros(4, 2), torch.zeros(4, 3), "2 features per sample but y has 3"),
        (torch.zeros(0, 2), torch.zeros(4, 2), "empty"),
        (torch.zeros(4), torch.zeros(4, 1), "shape \\(N, D\\)"),
        (torch.zeros(4, 2), torch.tensor([[0.0, float("nan")]] * 4), "y contains 4 non-finite"),
    ],
)
def test_bad_inputs_raise(metric, x: Tensor, y: Tensor, message: str) -> None:
    with pytest.raises(FlowmatchError, match=message):
        metric(x, y)


def test_bad_mmd_options_raise() -> None:
    x = torch.zeros(4, 2)
    with pytest.raises(FlowmatchError, match="at least 2"):
        mmd(x[:1], x)
    with pytest.raises(FlowmatchError, match="bandwidths must be positive"):
        mmd(x, x, [1.0, 0.0])
    with pytest.raises(FlowmatchError, match="max_points"):
        mmd(x, x, max_points=1)
    with pytest.raises(FlowmatchError, match="shape \\(D,\\)"):
        gaussian_mmd2(M1, S1, M2, S2[:1], 1.0)
    with pytest.raises(FlowmatchError, match="bandwidth must be a positive"):
        gaussian_mmd2(M1, S1, M2, S2, -1.0)
    with pytest.raises(FlowmatchError, match="dimensions 2 and 1"):
        gaussian_w2(M1, S1, [0.0], [[1.0]])


def test_w2_of_many_pairs_on_threads_is_each_pairs_w2_in_order(monkeypatch):
    import flowmatch.errors
    from flowmatch.metrics import wasserstein2_many

    monkeypatch.setattr(flowmatch.errors, "usable_cores", lambda: 3)
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(40 + k, 2, generator=g), torch.randn(30, 2, generator=g) + k)
             for k in range(5)]  # fmt: skip
    assert wasserstein2_many(pairs) == [wasserstein2(x, y) for x, y in pairs]
    assert wasserstein2_many([]) == []
    bad = [*pairs, (torch.full((3, 2), float("nan")), torch.zeros(3, 2))]
    with pytest.raises(FlowmatchError, match="finite"):
        wasserstein2_many(bad)
