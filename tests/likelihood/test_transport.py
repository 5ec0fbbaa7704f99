"""The transport equation d/dt p_t + div(p_t v_t) = 0 on the library's own log-densities."""

import math

import pytest
import torch

from flowmatch import FlowModel
from flowmatch.errors import FlowmatchError
from flowmatch.likelihood import continuity_residual, log_density_at
from tests.fields import F64, random_field, trained_field


@pytest.fixture(scope="module")
def fields() -> dict[str, FlowModel]:
    """A random field, and a tiny flow-matching field trained on 8 Gaussians."""
    random = FlowModel(random_field(1), torch.zeros(2), torch.ones(2)).double()
    return {"random": random, "trained": trained_field()}


def grid(n: int = 4, lim: float = 1.5) -> torch.Tensor:
    """An n x n grid of standardized points on [-lim, lim]^2, (n^2, 2)."""
    xs = torch.linspace(-lim, lim, n, dtype=F64)
    return torch.cartesian_prod(xs, xs)


@pytest.mark.parametrize("rate", [1.0, -0.5])
def test_log_density_at_matches_a_linear_fields_gaussian(rate):
    # v = a x carries N(0, I) to p_t = N(0, e^{2 a t} I)
    x = grid(3)
    for t in [0.0, 0.3, 1.0]:
        var = math.exp(2 * rate * t)
        exact = -(x.square().sum(1) / var + 2 * math.log(2 * math.pi * var)) / 2
        got = log_density_at(lambda s, y: rate * y, x, t)
        torch.testing.assert_close(got, exact, rtol=0, atol=1e-9)


def test_log_density_at_one_is_the_flows_log_prob(fields):
    flow = fields["trained"]
    z = grid()
    ours = log_density_at(flow.flat_field(), z, 1.0)
    theirs = flow.log_prob(flow.unstandardize(z), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(ours - torch.log(flow.data_std).sum(), theirs, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", ["random", "trained"])
@pytest.mark.parametrize("t", [0.3, 0.9])
def test_the_densities_obey_the_transport_equation(fields, name, t):
    f = fields[name].flat_field()
    coarse = continuity_residual(f, grid(), t, h=1e-2)
    fine = continuity_residual(f, grid(), t, h=5e-3)
    # small against the terms that cancel, and central differences: O(h^2)
    size = coarse.residual.abs().max() / coarse.scale.median()
    assert size < 1e-3, size
    ratio = coarse.residual.abs().max() / fine.residual.abs().max()
    assert 3.5 < ratio < 4.5, ratio
    assert (coarse.scale > 1e-2).all()  # the terms are not all zero


@pytest.mark.parametrize("name", ["random", "trained"])
def test_another_field_does_not_transport_the_densities(fields, name):
    # log p_t computed with -v is not carried by v: the residual is as large as the terms
    f = fields[name].flat_field()
    right = continuity_residual(f, grid(), 0.5, h=1e-2)
    wrong = continuity_residual(f, grid(), 0.5, h=1e-2, density_field=lambda t, x: -f(t, x))
    assert wrong.relative.median() > 0.1, wrong.relative
    assert wrong.residual.abs().median() > 100 * right.residual.abs().max()


def test_refuses_bad_steps_and_points():
    f = random_field()
    field = lambda t, x: f(x, t)  # noqa: E731
    with pytest.raises(FlowmatchError, match="h must be a number > 0"):
        continuity_residual(field, grid(), 0.5, h=0.0)
    with pytest.raises(FlowmatchError, match="finite time"):
        log_density_at(field, grid(), math.nan)
    with pytest.raises(FlowmatchError, match="non-finite"):
        continuity_residual(field, torch.full((2, 2), math.inf, dtype=F64), 0.5, h=1e-2)
