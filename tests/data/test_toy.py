"""Properties of the 2-D toy generators: shapes, reproducibility and their distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowmatch.data.toy import TOY_DATASETS, sample_toy
from flowmatch.errors import FlowmatchError

NAMES = list(TOY_DATASETS)
BIG = 20_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def big() -> dict[str, torch.Tensor]:
    """20k points of every set, drawn once for the distribution tests."""
    return {name: sample_toy(name, BIG, gen(123)).double() for name in NAMES}


def test_registry_names():
    assert set(TOY_DATASETS) == {
        "swissroll",
        "circles",
        "rings",
        "moons",
        "8gaussians",
        "pinwheel",
        "2spirals",
        "checkerboard",
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 101])
def test_shape_dtype_finite(name, n):
    x = sample_toy(name, n, gen())
    assert x.shape == (n, 2)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("name", NAMES)
def test_seed_determines_output_and_global_rng_untouched(name):
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    a = sample_toy(name, 64, gen(1))
    b = sample_toy(name, 64, gen(1))
    c = sample_toy(name, 64, gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])


def test_sample_toy_rejects_bad_input():
    with pytest.raises(FlowmatchError, match=r"unknown toy dataset 'spiral'.*2spirals"):
        sample_toy("spiral", 10, gen())
    for n in (0, -3, 2.5, True):
        with pytest.raises(FlowmatchError, match="the number of points n must be an integer >= 1"):
            sample_toy("moons", n, gen())
    with pytest.raises(FlowmatchError, match=r"torch\.Generator"):
        sample_toy("moons", 10, 0)


def test_checkerboard_occupies_alternate_squares(big):
    x = big["checkerboard"]
    assert ((x >= -4) & (x < 4)).all()
    cells = torch.floor(x / 2)  # (N, 2) integer square coordinates in {-2, ..., 1}
    assert (cells.sum(1) % 2 == 0).all()
    # The eight occupied squares are equally likely.
    _, counts = torch.unique(cells, dim=0, return_counts=True)
    assert len(counts) == 8
    assert (counts / BIG - 1 / 8).abs().max() < 0.02


def test_eight_gaussians_clusters(big):
    x = big["8gaussians"]
    angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    centers = 4 / 1.414 * torch.stack([angle.cos(), angle.sin()], 1)  # (8, 2)
    label = torch.cdist(x, centers).argmin(1)
    for k in range(8):
        pts = x[label == k]
        assert abs(len(pts) / BIG - 1 / 8) < 0.02
        assert (pts.mean(0) - centers[k]).norm() < 0.05
        assert torch.allclose(pts.std(0), torch.full((2,), 0.5 / 1.414, dtype=x.dtype), atol=0.02)


def test_circles_radii(big):
    x = big["circles"]
    r = x.norm(dim=1)
    outer = r > 2.25
    assert abs(outer.double().mean() - 0.5) < 0.01  # exactly half before noise
    assert abs(r[outer].mean() - 3.0) < 0.03
    assert abs(r[~outer].mean() - 1.5) < 0.03
    assert x.mean(0).abs().max() < 0.03


def test_rings_radii(big):
    x = big["rings"]
    radii = torch.tensor([3.0, 2.25, 1.5, 0.75], dtype=x.dtype)
    r = x.norm(dim=1)
    label = (r[:, None] - radii).abs().argmin(1)
    counts = torch.bincount(label, minlength=4).double() / BIG
    assert torch.allclose(counts, torch.full((4,), 0.25, dtype=x.dtype), atol=0.01)
    for k in range(4):
        assert abs(r[label == k].mean() - radii[k]) < 0.03


def test_moons_mean_and_moon_radii(big):
    x = big["moons"]
    # Upper moon: unit half circle centred at (0, 0); lower: centred at (1, 0.5); then *2 + shift.
    assert torch.allclose(x.mean(0), torch.tensor([0.0, 0.3], dtype=x.dtype), atol=0.03)
    u = (x - torch.tensor([-1.0, -0.2], dtype=x.dtype)) / 2
    d_upper = u.norm(dim=1)  # distance to the upper moon's centre
    d_lower = (u - torch.tensor([1.0, 0.5], dtype=x.dtype)).norm(dim=1)
    upper = (d_upper - 1).abs() < (d_lower - 1).abs()
    assert abs(upper.double().mean() - 0.5) < 0.03
    assert (u[upper, 1].mean() > 0.4) and (u[~upper, 1].mean() < 0.1)
    # Each point lies within the noise (std 0.1 per axis) of its unit circle.
    assert (torch.where(upper, d_upper, d_lower) - 1).abs().mean() < 0.1


def test_swissroll_mean(big):
    # E[t cos t] = 2 and E[t sin t] = 2 / (3 pi) for t ~ U[1.5 pi, 4.5 pi], then / 5.
    expected = torch.tensor([2 / 5, 2 / (3 * math.pi) / 5], dtype=torch.float64)
    assert torch.allclose(big["swissroll"].mean(0), expected, atol=0.03)


def test_pinwheel_has_five_fold_symmetry(big):
    x = big["pinwheel"]
    theta = torch.atan2(x[:, 1], x[:, 0])
    for k in range(1, 5):  # a five-fold symmetric law has no other low Fourier modes
        assert torch.polar(torch.ones_like(theta), k * theta).mean().abs() < 0.03
    assert torch.polar(torch.ones_like(theta), 5 * theta).mean().abs() > 0.3


def test_two_spirals_arms_are_reflections():
    n = 2 * 5000 + 1
    x = sample_toy("2spirals", n, gen(5)).double()
    first, second = x[: n - n // 2], x[n - n // 2 :]
    # Before noise the second arm is minus the first; what is left is two N(0, 0.1^2) draws.
    resid = first[: n // 2] + second
    assert torch.allclose(
        resid.std(0), torch.full((2,), 0.1 * math.sqrt(2), dtype=x.dtype), atol=0.01
    )
    assert (x.norm(dim=1) < (3 * math.pi + 0.5 * math.sqrt(2)) / 3 + 0.6).all()
