"""The instantaneous change of variables against Gaussian-to-Gaussian flows with closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from flowmatch.errors import FlowmatchError
from flowmatch.likelihood import (
    ExactDivergence,
    gauss_legendre,
    integrate_divergence,
    log_prob,
    make_divergence,
    sample_log_prob,
    standard_normal_log_prob,
)
from flowmatch.solvers import SOLVERS

F64 = torch.float64
TIGHT = {"solver": "dopri5", "atol": 1e-9, "rtol": 1e-9}
g = torch.Generator().manual_seed(0)
MU = torch.tensor([1.5, -0.5, 0.25], dtype=F64)
SIGMA = torch.tensor([0.5, 2.0, 1.2], dtype=F64)
A = 0.6 * torch.randn(3, 3, dtype=F64, generator=g)  # not symmetric
B = torch.randn(3, dtype=F64, generator=g)


def gaussian_fm_field(t, x):
    """The marginal flow-matching field from N(0, I) to N(MU, diag SIGMA^2), linear path.

    x_t = t MU + s_t x_0 with s_t^2 = (1 - t)^2 + t^2 SIGMA^2, so
    v(x, t) = MU + (t SIGMA^2 - (1 - t)) / s_t^2 (x - t MU), and p_1 = N(MU, diag SIGMA^2).
    """
    s2 = (1 - t) ** 2 + t**2 * SIGMA**2
    return MU + (t * SIGMA**2 - (1 - t)) / s2 * (x - t * MU)


def gaussian_fm_log_p1(x):
    return Normal(MU, SIGMA).log_prob(x).sum(dim=1)


def linear_field(t, x):
    """v(x) = A x + b: x_1 = e^A x_0 + A^{-1} (e^A - I) b, so p_1 = N(m, e^A e^{A^T})."""
    return x @ A.T + B


def linear_log_p1(x):
    e = torch.linalg.matrix_exp(A)
    m = torch.linalg.solve(A, (e - torch.eye(3, dtype=F64)) @ B)
    return MultivariateNormal(m, e @ e.T).log_prob(x)


def linear_map(x0):
    e = torch.linalg.matrix_exp(A)
    return x0 @ e.T + torch.linalg.solve(A, (e - torch.eye(3, dtype=F64)) @ B)


CASES = {
    "gaussian-fm": (gaussian_fm_field, gaussian_fm_log_p1, lambda x0: MU + SIGMA * x0),
    "linear": (linear_field, linear_log_p1, linear_map),
}


@pytest.mark.parametrize("case", CASES)
def test_log_prob_equals_the_closed_form(case):
    field, exact, _ = CASES[case]
    x1 = 2 * torch.randn(20, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    r = log_prob(field, x1, ExactDivergence(), **TIGHT)
    torch.testing.assert_close(r.log_prob, exact(x1), rtol=0, atol=1e-7)
    assert torch.equal(r.stderr, torch.zeros(20, dtype=F64)) and r.nfe > 0


@pytest.mark.parametrize("case", CASES)
def test_sampling_pass_gives_the_map_and_its_density(case):
    field, exact, flow_map = CASES[case]
    x0 = torch.randn(20, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    r = sample_log_prob(field, x0, ExactDivergence(), **TIGHT)
    torch.testing.assert_close(r.x, flow_map(x0), rtol=0, atol=1e-8)
    torch.testing.assert_close(r.log_prob, exact(r.x), rtol=0, atol=1e-7)


@pytest.mark.parametrize("solver", [n for n, s in SOLVERS.items() if not s.adaptive])
def test_fixed_step_log_prob_converges_at_the_solver_order(solver):
    x1 = torch.randn(20, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    errors = [
        (log_prob(linear_field, x1, ExactDivergence(), solver=solver, steps=n).log_prob
         - linear_log_p1(x1)).abs().max()
        for n in (64, 128)
    ]  # fmt: skip
    order = math.log2(errors[0] / errors[1])
    assert abs(order - SOLVERS[solver].order) < 0.2, (errors, order)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_agrees_with_exact_within_its_reported_stderr(distribution):
    # on one fixed grid both follow the same trajectory, so only the estimator differs
    x1 = torch.randn(400, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    grid = {"solver": "rk4", "steps": 10}
    exact = log_prob(linear_field, x1, ExactDivergence(), **grid).log_prob
    est = make_divergence(
        "hutchinson", x1, probes=8, distribution=distribution, generator=torch.Generator()
    )
    r = log_prob(linear_field, x1, est, **grid)
    z = (r.log_prob - exact) / r.stderr  # per-point errors in units of their stderr
    assert (z.abs() < 3).float().mean() > 0.95
    # the mean over points: its error is within 4 standard errors sqrt(sum se^2) / n
    mean_se = r.stderr.square().sum().sqrt() / len(z)
    assert (r.log_prob - exact).mean().abs() < 4 * mean_se
    assert r.stderr.min() > 0


def test_one_probe_has_no_stderr_and_exact_has_zero():
    x1 = torch.zeros(4, 3, dtype=F64)
    one = make_divergence("hutchinson", x1, probes=1, generator=torch.Generator())
    assert log_prob(linear_field, x1, one, solver="rk4", steps=4).stderr is None


def test_kinetic_energy_of_a_constant_field_in_both_directions():
    x = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    field = lambda t, x: B.expand_as(x)  # noqa: E731
    for fn in (log_prob, sample_log_prob):
        r = fn(field, x, ExactDivergence(), kinetic=True, solver="rk4", steps=3)
        torch.testing.assert_close(r.kinetic, B.square().sum().expand(5))
        # a translation preserves volume: log p_1(x_1) = log p_0(x_0)
        x0 = x - B if fn is log_prob else x
        torch.testing.assert_close(r.log_prob, standard_normal_log_prob(x0))


def test_a_custom_source_density_is_used():
    x = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(6))
    laplace = lambda z: -z.abs().sum(dim=1) - 3 * math.log(2.0)  # noqa: E731
    r = log_prob(lambda t, y: torch.zeros_like(y), x, ExactDivergence(), log_p0=laplace)
    torch.testing.assert_close(r.log_prob, laplace(x))


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_gauss_legendre_rule_is_exact_to_degree_2n_minus_1(nodes):
    s, w = gauss_legendre(nodes)
    for k in range(2 * nodes):
        assert (w * s**k).sum().item() == pytest.approx(1 / (k + 1), abs=1e-14)
    assert (w * s ** (2 * nodes)).sum().item() != pytest.approx(1 / (2 * nodes + 1), abs=1e-8)


@pytest.mark.parametrize(("solver", "nodes", "order"), [("rk4", 2, 4), ("rk38", 3, 4),
                                                         ("midpoint", 2, 2)])  # fmt: skip
def test_divergence_at_gauss_nodes_converges_to_the_closed_form(solver, nodes, order):
    # the field's divergence varies in t, so the rule's nodes matter; x is solved through them
    x1 = 2 * torch.randn(20, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    exact = gaussian_fm_log_p1(x1)
    errors = []
    for panels in (8, 16):
        r = log_prob(gaussian_fm_field, x1, ExactDivergence(), solver=solver, steps=panels,
                     divergence_nodes=nodes)  # fmt: skip
        errors.append((r.log_prob - exact).abs().max().item())
        # (nodes + 1) sub-steps of the solver per panel, and one divergence per node
        assert r.nfe == panels * ((nodes + 1) * SOLVERS[solver].stages + nodes)
    observed = math.log2(errors[0] / errors[1])
    assert errors[1] < 1e-3 and observed > order - 0.3, (errors, observed)


def test_gauss_nodes_give_the_same_integrals_as_the_augmented_ode_both_ways():
    x = torch.randn(10, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    for t0, t1 in ((0.0, 1.0), (1.0, 0.0)):
        ode = integrate_divergence(gaussian_fm_field, x, t0, t1, ExactDivergence(),
                                   kinetic=True, **TIGHT)  # fmt: skip
        quad = integrate_divergence(gaussian_fm_field, x, t0, t1, ExactDivergence(),
                                    kinetic=True, solver="rk4", steps=32,
                                    divergence_nodes=3)  # fmt: skip
        torch.testing.assert_close(quad.x, ode.x, rtol=0, atol=1e-7)
        torch.testing.assert_close(quad.div_integral, ode.div_integral, rtol=0, atol=1e-8)
        torch.testing.assert_close(quad.kinetic, ode.kinetic, rtol=0, atol=1e-6)


def test_gauss_nodes_need_a_fixed_grid_solver():
    x1 = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(FlowmatchError, match="divergence_nodes needs a fixed-grid solver"):
        log_prob(linear_field, x1, ExactDivergence(), solver="dopri5", divergence_nodes=2)
    with pytest.raises(FlowmatchError, match="divergence_nodes must be an integer >= 0"):
        log_prob(linear_field, x1, ExactDivergence(), solver="rk4", divergence_nodes=-1)
