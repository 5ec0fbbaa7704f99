"""The closed-form optimal velocity v*(x, t) = E[x1 - x0 | x_t = x] against hand derivations."""

import math

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import OptimalVelocity, VelocityModel
from flowmatch.models import oracle as oracle_module


@pytest.fixture(autouse=True, scope="module")
def float64():
    """This file checks closed forms to 1e-10: float64 by default, restored afterwards."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


CASES = [(seed, t) for seed, t in enumerate([0.0, 0.1, 0.37, 0.5, 0.8, 0.95, 0.999])]
"""(seed, t) pairs: random data and queries per seed, t from the noise end to near the data."""


def gaussian_v(x, t, mu, var):
    """E[x1 - x0 | x_t] for x1 ~ N(mu, diag(var)): a per-coordinate linear regression.

    Var x_t = (1-t)^2 + t^2 var, Cov(x1 - x0, x_t) = t var - (1 - t).
    """
    t = t[:, None]
    return mu + (t * var - (1 - t)) / ((1 - t) ** 2 + t**2 * var) * (x - t * mu)


def normal_pdf(x, mean, var):
    return torch.exp(-0.5 * ((x - mean) ** 2 / var).sum(-1)) / torch.sqrt(
        (2 * math.pi * var).prod(-1)
    )


@pytest.mark.parametrize(("seed", "t"), CASES)
def test_gaussian_matches_the_linear_regression(seed, t):
    g = torch.Generator().manual_seed(seed)
    mu, var = torch.randn(1, 3, generator=g), torch.rand(1, 3, generator=g) + 0.1
    x, tt = torch.randn(7, 3, generator=g) * 2, torch.full((7,), t)
    v = OptimalVelocity.gaussian_mixture(mu, var)(x, tt)
    torch.testing.assert_close(v, gaussian_v(x, tt, mu[0], var[0]), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("seed", "t"), CASES)
def test_full_covariance_gaussian_matches_the_matrix_regression(seed, t):
    """v* = mu + (t S - (1-t) I) C^{-1} (x - t mu) with C = (1-t)^2 I + t^2 S."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, generator=g)
    cov, mu = a @ a.T + 0.1 * torch.eye(3), torch.randn(3, generator=g)
    x = torch.randn(5, 3, generator=g)
    c = (1 - t) ** 2 * torch.eye(3) + t**2 * cov
    expected = mu + (x - t * mu) @ torch.linalg.solve(c, t * cov - (1 - t) * torch.eye(3)).T
    v = OptimalVelocity.gaussian_mixture(mu[None], cov[None])(x, t)
    torch.testing.assert_close(v, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("seed", "t"), CASES)
def test_two_component_mixture_is_the_posterior_mix_of_gaussian_fields(seed, t):
    g = torch.Generator().manual_seed(seed)
    mu, var = torch.randn(2, 2, generator=g) * 2, torch.rand(2, 2, generator=g) + 0.05
    pi = torch.tensor([0.3, 0.7])
    x, tt = torch.randn(9, 2, generator=g) * 2, torch.full((9,), t)
    # by hand: w_k ∝ pi_k N(x; t mu_k, (1-t)^2 + t^2 var_k), v* = sum_k w_k v*_k
    dens = torch.stack(
        [pi[k] * normal_pdf(x, t * mu[k], (1 - t) ** 2 + t**2 * var[k]) for k in (0, 1)]
    )
    w = dens / dens.sum(0)
    fields = torch.stack([gaussian_v(x, tt, mu[k], var[k]) for k in (0, 1)])
    expected = (w[:, :, None] * fields).sum(0)
    v = OptimalVelocity.gaussian_mixture(mu, var, pi)(x, tt)
    torch.testing.assert_close(v, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(("seed", "t"), [*CASES, (7, 1.0 - 1e-6), (8, 1.0)])
def test_empirical_v_of_one_point_is_the_straight_line_to_it(seed, t):
    """x_t = (1-t) x0 + t y  =>  x1 - x0 = (y - x_t) / (1 - t), for every x (t clamped at 1)."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.randn(1, 4, generator=g), torch.randn(6, 4, generator=g)
    v = OptimalVelocity.empirical(y)(x, t)
    s = 1 - min(t, 1 - oracle_module.T_EPS)
    torch.testing.assert_close(v, (y - x) / s, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("seed", "t"), CASES)
def test_points_are_the_mixture_of_zero_covariance_components(seed, t):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.randn(6, 2, generator=g), torch.randn(8, 2, generator=g)
    v_points = OptimalVelocity.empirical(y)(x, t)
    v_mix = OptimalVelocity.gaussian_mixture(y, torch.zeros(6, 2))(x, t)
    torch.testing.assert_close(v_points, v_mix, rtol=1e-7, atol=1e-7)


def test_chunked_log_sum_exp_equals_one_block_and_is_stable_near_t_one(monkeypatch):
    """Many points, small blocks, t = 1 - 1e-6: weights underflow naively but not streamed."""
    g = torch.Generator().manual_seed(0)
    y, x = torch.randn(3000, 2, generator=g), torch.randn(50, 2, generator=g)
    t = torch.tensor([0.0, 0.5, 0.99, 1.0 - 1e-6, 1.0]).repeat(10)
    oracle = OptimalVelocity.empirical(y)
    whole = oracle(x, t)
    monkeypatch.setattr(oracle_module, "POINT_CHUNK", 128)
    monkeypatch.setattr(oracle_module, "QUERY_CHUNK", 7)
    torch.testing.assert_close(oracle(x, t), whole, rtol=1e-10, atol=1e-10)
    assert torch.isfinite(whole).all()
    # near t = 1 the posterior sits on the nearest point: v* = (y_nearest - x) / (1 - t)
    near = t >= 1 - 1e-6
    nearest = y[torch.cdist(x[near], y).argmin(1)]
    torch.testing.assert_close(whole[near] * oracle_module.T_EPS, nearest - x[near])


def test_conditional_uses_the_points_of_its_class_and_none_uses_all():
    g = torch.Generator().manual_seed(1)
    y, labels = torch.randn(10, 2, generator=g), torch.arange(10) % 3
    x, t = torch.randn(6, 2, generator=g), torch.rand(6, generator=g)
    oracle = OptimalVelocity.empirical(y, labels)
    c = torch.tensor([0, 1, 2, 2, 1, 0])
    v = oracle(x, t, c)
    for k in range(3):
        rows = c == k
        torch.testing.assert_close(
            v[rows], OptimalVelocity.empirical(y[labels == k])(x[rows], t[rows])
        )
    torch.testing.assert_close(oracle(x, t), OptimalVelocity.empirical(y)(x, t))
    dropped = oracle(x, t, c, drop=torch.tensor([True, False] * 3))
    torch.testing.assert_close(dropped[0::2], oracle(x, t)[0::2])
    torch.testing.assert_close(dropped[1::2], v[1::2])


@pytest.mark.parametrize(("seed", "t"), CASES[1:-1])
def test_fm_loss_of_v_star_is_below_any_perturbed_field(seed, t):
    """Rao-Blackwellized on a fixed batch of x_t ~ p_t: L(v) = mean |v - v*|^2 + mean Var,
    so L(v* + d) - L(v*) = mean |d|^2 > 0 exactly, for any perturbation d."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(20, 2, generator=g)
    oracle = OptimalVelocity.empirical(y)
    x1 = y[torch.randint(20, (64,), generator=g)]
    xt = (1 - t) * torch.randn(64, 2, generator=g) + t * x1
    d = torch.randn(64, 2, generator=g) * torch.rand(1, generator=g)
    v = oracle(xt, t)
    u = (y[None] - xt[:, None]) / (1 - t)  # (B, N, D): every branch's target x1 - x0
    w = torch.softmax(-((xt[:, None] - t * y[None]) ** 2).sum(2) / (2 * (1 - t) ** 2), 1)

    def loss(field):  # sum_i w_i |field - u_i|^2, averaged over the batch
        return (w * ((field[:, None] - u) ** 2).sum(2)).sum(1).mean()

    assert loss(v) < loss(v + d)
    torch.testing.assert_close(loss(v + d) - loss(v), d.square().sum(1).mean())
    torch.testing.assert_close(loss(v), oracle.conditional_variance(xt, t).mean())


def test_fm_loss_of_v_star_is_below_perturbed_fields_on_a_fixed_pair_batch():
    """The plain FM loss on a fixed batch of (x0, x1, t) pairs, against scaled and shifted v*."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, 2, generator=g)
    oracle = OptimalVelocity.empirical(y)
    x0, x1 = torch.randn(20000, 2, generator=g), y[torch.randint(50, (20000,), generator=g)]
    t = torch.rand(20000, generator=g) * 0.9
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    v = oracle(xt, t)
    best = (v - (x1 - x0)).square().mean()
    for field in (1.3 * v, 0.7 * v, v + 0.3, v + 0.3 * torch.sin(3 * xt), torch.zeros_like(v)):
        assert best < (field - (x1 - x0)).square().mean()


def test_flow_model_samples_inverts_and_log_probs_a_gaussian_exactly():
    """FlowModel(v*) of N(mu, s^2) data: samples, inversion and log p are those of the data."""
    mu, var = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.25, 4.0]])
    flow = FlowModel(OptimalVelocity.gaussian_mixture(mu, var), torch.zeros(2), torch.ones(2))
    assert isinstance(flow.velocity, VelocityModel)
    x = flow.sample(20000, seed=0, solver="rk4", steps=20).double()  # the flow's float32
    torch.testing.assert_close(x.mean(0), mu[0], atol=0.05, rtol=0)
    torch.testing.assert_close(x.var(0), var[0], rtol=0.05, atol=0)
    pts = torch.tensor([[1.0, 0.0], [0.5, -3.0]])
    z = flow.invert(pts, solver="rk4", steps=40).double()
    torch.testing.assert_close(z, (pts - mu) / var.sqrt(), atol=1e-5, rtol=0)
    exact = torch.distributions.Normal(mu[0], var[0].sqrt()).log_prob(pts).sum(1)
    torch.testing.assert_close(flow.log_prob(pts).double(), exact, atol=1e-4, rtol=0)


def test_flow_model_of_points_lands_on_the_points():
    y = torch.tensor([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]])
    flow = FlowModel(OptimalVelocity.empirical(y), torch.zeros(2), torch.ones(2))
    x = flow.sample(200, seed=0, solver="euler", steps=100).double()  # float32 flow
    assert torch.cdist(x, y).min(1).values.max() < 1e-5


def test_bad_inputs_are_one_line_errors():
    y = torch.randn(4, 2)
    with pytest.raises(FlowmatchError, match="no labels"):
        OptimalVelocity.empirical(y)(y, 0.5, torch.zeros(4, dtype=torch.long))
    with pytest.raises(FlowmatchError, match="labels must be"):
        OptimalVelocity.empirical(y, torch.zeros(3, dtype=torch.long))
    with pytest.raises(FlowmatchError, match="covariances must have shape"):
        OptimalVelocity.gaussian_mixture(y, torch.ones(4, 3))
    with pytest.raises(FlowmatchError, match="positive semi-definite"):
        OptimalVelocity.gaussian_mixture(y[:1], -torch.ones(1, 2))
    with pytest.raises(FlowmatchError, match="class 1 has no points"):
        OptimalVelocity.empirical(y, torch.zeros(4, dtype=torch.long), num_classes=2)(
            y, 0.5, torch.ones(4, dtype=torch.long)
        )
