"""Standardizer: statistics, inverse, log-det against the autograd Jacobian, serialization."""

from __future__ import annotations

import json
import math

import pytest
import torch

from flowmatch.data.standardize import Standardizer
from flowmatch.errors import FlowmatchError


@pytest.fixture
def x() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.01, 1.0, 30.0, 1e4], dtype=torch.float64)
    return torch.randn(500, 4, generator=g, dtype=torch.float64) * scale + 7.0  # (500, 4)


def test_fitted_data_is_standard(x):
    z = Standardizer.fit(x).forward(x)
    assert torch.allclose(z.mean(0), torch.zeros(4, dtype=x.dtype), atol=1e-10)
    assert torch.allclose(z.std(0, correction=0), torch.ones(4, dtype=x.dtype), atol=1e-10)


def test_inverse_round_trip(x):
    s = Standardizer.fit(x)
    assert torch.allclose(s.inverse(s.forward(x)), x, rtol=1e-12, atol=0)
    z = torch.randn(9, 4, dtype=x.dtype)
    assert torch.allclose(s.forward(s.inverse(z)), z, atol=1e-10)
    assert torch.equal(s(x), s.forward(x))


def test_log_abs_det_matches_autograd_jacobian(x):
    s = Standardizer.fit(x)
    point = x[0]
    jac = torch.autograd.functional.jacobian(lambda v: s.forward(v[None])[0], point)  # (4, 4)
    _, logabsdet = torch.linalg.slogdet(jac)
    assert torch.allclose(s.log_abs_det(), logabsdet)
    assert s.log_abs_det().shape == ()


def test_change_of_variables_gives_the_fitted_gaussian(x):
    # A standard normal in z is N(mean, diag(std^2)) in x.
    s = Standardizer.fit(x)
    z = s.forward(x)
    log_pz = -0.5 * (z**2).sum(1) - 2 * math.log(2 * math.pi)
    gauss = torch.distributions.Normal(s.mean, s.std)
    assert torch.allclose(log_pz + s.log_abs_det(), gauss.log_prob(x).sum(1))


def test_constant_feature_is_floored_and_restored():
    x = torch.tensor([[5.0, 1e6, 1.0], [5.0, 1e6, 2.0], [5.0, 1e6, 3.0]])
    s = Standardizer.fit(x)
    assert torch.allclose(s.std[:2], torch.tensor([5e-8, 1e-2]))
    z = s.forward(x)
    assert torch.isfinite(z).all() and torch.equal(z[:, :2], torch.zeros(3, 2))
    assert torch.equal(s.inverse(z)[:, :2], x[:, :2])
    assert torch.isfinite(s.log_abs_det())


def test_single_sample_fits():
    s = Standardizer.fit(torch.tensor([[0.5, -2.0]]))
    assert torch.equal(s.forward(torch.tensor([[0.5, -2.0]])), torch.zeros(1, 2))


def test_dict_round_trip_through_json():
    s = Standardizer.fit(torch.randn(50, 3) * 4 + 1)
    d = json.loads(json.dumps(s.to_dict()))
    t = Standardizer.from_dict(d)
    assert torch.equal(t.mean, s.mean) and torch.equal(t.std, s.std)
    assert t.mean.dtype == torch.float32


@pytest.mark.parametrize(
    "record",
    [
        {"mean": [0.0]},
        [0.0, 1.0],
        {"mean": [0.0, 1.0], "std": [1.0]},
        {"mean": [float("nan")], "std": [1.0]},
        {"mean": [0.0], "std": [0.0]},
        {"mean": [0.0], "std": [-1.0]},
        {"mean": "0", "std": [1.0]},
        {"mean": [], "std": []},
        {"mean": [True], "std": [1.0]},
    ],
)
def test_from_dict_rejects_bad_records(record):
    with pytest.raises(FlowmatchError, match="standardizer record"):
        Standardizer.from_dict(record)


def test_bad_shapes_and_values(x):
    s = Standardizer.fit(x)
    with pytest.raises(FlowmatchError, match=r"\(N, 4\)"):
        s.forward(torch.zeros(3, 5, dtype=x.dtype))
    with pytest.raises(FlowmatchError, match=r"\(N, 4\)"):
        s.inverse(torch.zeros(4, dtype=x.dtype))
    with pytest.raises(FlowmatchError, match=r"\(N, D\)"):
        Standardizer.fit(torch.zeros(3, 2, 2))
    with pytest.raises(FlowmatchError, match="NaN"):
        Standardizer.fit(torch.tensor([[1.0], [float("nan")]]))
    with pytest.raises(FlowmatchError, match="positive"):
        Standardizer(torch.zeros(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(FlowmatchError, match="features"):
        Standardizer(torch.zeros(2), torch.ones(3))


def test_to_moves_and_casts(x):
    s = Standardizer.fit(x).to("cpu", torch.float32)
    assert s.mean.dtype == s.std.dtype == torch.float32
    assert s.forward(x.float()).dtype == torch.float32
