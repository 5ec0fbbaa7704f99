"""Divergence estimators: the exact trace against autograd's Jacobian, Hutchinson's moments."""

from __future__ import annotations

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.likelihood import (
    AUTO_EXACT_MAX_DIM,
    LOG_PROB_EXACT_MAX_DIM,
    ExactDivergence,
    draw_probes,
    exact_divergence,
    exact_divergence_loop,
    hutchinson_divergence,
    make_divergence,
    resolve_divergence,
)
from flowmatch.models import MLPVelocity

F64 = torch.float64


def random_field(d: int, seed: int = 0):
    torch.manual_seed(seed)
    net = MLPVelocity(d, width=24, depth=2, activation="tanh").to(F64)
    return net, (lambda x: net(x, 0.3))


def jacobian_trace(f, x):
    """tr(d f(x_b) / d x_b) for each row, by autograd's full Jacobian of one sample at a time."""
    traces = []
    for xb in x:
        jac = torch.autograd.functional.jacobian(lambda y: f(y[None])[0], xb)  # (D, D)
        traces.append(jac.trace())
    return torch.stack(traces)


@pytest.mark.parametrize("d", [1, 2, 5, 16])
def test_exact_divergence_is_the_trace_of_the_autograd_jacobian(d):
    _, f = random_field(d)
    x = torch.randn(7, d, dtype=F64, generator=torch.Generator().manual_seed(1))
    v, div = exact_divergence(f, x)
    torch.testing.assert_close(v, f(x))
    torch.testing.assert_close(div, jacobian_trace(f, x), rtol=1e-10, atol=1e-10)


def test_exact_divergence_under_no_grad_and_its_parameter_gradient():
    net, f = random_field(3)
    x = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, div_no_grad = exact_divergence(f, x)
    _, div = exact_divergence(f, x)
    torch.testing.assert_close(div_no_grad, div.detach())
    (grad,) = torch.autograd.grad(div.square().sum(), net.net[0].weight)
    # the same gradient through a per-dimension autograd loop with create_graph
    xr = x.clone().requires_grad_()
    v = f(xr)
    loop = sum(torch.autograd.grad(v[:, i].sum(), xr, create_graph=True)[0][:, i] for i in range(3))
    (expected,) = torch.autograd.grad(loop.square().sum(), net.net[0].weight)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_the_textbook_variance(distribution):
    g = torch.Generator().manual_seed(3)
    a = torch.randn(4, 4, dtype=F64, generator=g)  # not symmetric
    x = torch.randn(1, 4, dtype=F64, generator=g)
    k = 40_000
    probes = draw_probes(k, (1, 4), distribution=distribution, generator=g, dtype=F64)
    v, est = hutchinson_divergence(lambda y: y @ a.T, x, probes)
    est = est[0]  # (k,)
    torch.testing.assert_close(v, x @ a.T)
    s = (a + a.T) / 2
    variance = 2 * (
        s.square().sum() - (s.diagonal().square().sum() if distribution == "rademacher" else 0)
    )
    assert abs(est.mean() - a.trace()) < 4 * (variance / k).sqrt()
    assert abs(est.var() / variance - 1) < 0.05


def test_probes_are_seeded_and_have_unit_covariance():
    a = draw_probes(3, (5, 2), generator=torch.Generator().manual_seed(0))
    b = draw_probes(3, (5, 2), generator=torch.Generator().manual_seed(0))
    c = draw_probes(3, (5, 2), generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 5, 2) and torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {-1.0, 1.0}
    many = draw_probes(20_000, (1, 3), distribution="gaussian", generator=torch.Generator())
    cov = torch.einsum("kbi,kbj->ij", many, many) / 20_000
    torch.testing.assert_close(cov, torch.eye(3), atol=0.05, rtol=0)


def test_auto_is_exact_up_to_the_documented_dimension():
    assert resolve_divergence("auto", AUTO_EXACT_MAX_DIM) == "exact"
    assert resolve_divergence("auto", AUTO_EXACT_MAX_DIM + 1) == "hutchinson"
    assert make_divergence("auto", torch.zeros(2, 2)).exact
    est = make_divergence("auto", torch.zeros(2, 64), probes=3)
    assert not est.exact and est.columns == 3 and est.probes.shape == (3, 2, 64)


def test_log_prob_auto_is_exact_up_to_its_own_dimension():
    top = LOG_PROB_EXACT_MAX_DIM
    assert resolve_divergence("auto", top, top) == "exact"
    assert resolve_divergence("auto", top + 1, top) == "hutchinson"
    assert make_divergence("auto", torch.zeros(2, top), exact_max_dim=top).exact
    assert resolve_divergence("hutchinson", 2, top) == "hutchinson"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "trace"}, "unknown divergence 'trace'"),
        ({"probes": 0}, "probes must be an integer >= 1"),
        ({"probes": 2.5}, "probes must be an integer >= 1"),
        ({"distribution": "uniform"}, "unknown probe distribution 'uniform'"),
    ],
)
def test_bad_options_are_rejected_in_one_line(kwargs, message):
    kwargs = {"name": "hutchinson", **kwargs}
    with pytest.raises(FlowmatchError, match=message) as info:
        make_divergence(kwargs.pop("name"), torch.zeros(2, 3), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("d", [1, 2, 16, 70])
def test_the_loop_divergence_is_the_trace_and_the_same_velocity(d):
    _, f = random_field(d)
    x = torch.randn(5, d, dtype=F64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        v, div = exact_divergence_loop(f, x)
        for mode in ("loop", "reverse", "auto"):
            v_m, div_m = ExactDivergence(mode)(f, x)
            torch.testing.assert_close(div_m[:, 0], div, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(v_m, v, rtol=0, atol=0)
    torch.testing.assert_close(div, jacobian_trace(f, x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(v, f(x).detach(), rtol=0, atol=0)


def test_an_unknown_exact_mode_is_rejected_in_one_line():
    with pytest.raises(FlowmatchError, match="unknown exact divergence mode 'sideways'"):
        ExactDivergence("sideways")
