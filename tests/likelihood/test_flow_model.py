"""FlowModel.log_prob and sampling with log-densities: units, closed forms, one pass, mass 1."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Normal

import flowmatch
from flowmatch import FlowModel
from flowmatch.data.logit import LogitTransform
from flowmatch.errors import FlowmatchError
from flowmatch.likelihood import LOG_PROB_EXACT_MAX_DIM, resolve_divergence
from flowmatch.models import ModelConfig, VelocityModel
from flowmatch.training import TrainConfig, train

F64 = torch.float64
TIGHT = {"solver": "dopri5", "atol": 1e-9, "rtol": 1e-9}


class GaussianField(VelocityModel):
    """The flow-matching field from N(0, I) to N(mu, diag sigma^2) in standardized units."""

    def __init__(self, mu: Tensor, sigma: Tensor) -> None:
        super().__init__()
        self.shape = tuple(mu.shape)
        self.register_buffer("mu", mu)
        self.register_buffer("sigma", sigma)

    def velocity(self, xt: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        t = t[:, None]
        s2 = (1 - t) ** 2 + t**2 * self.sigma**2
        return self.mu + (t * self.sigma**2 - (1 - t)) / s2 * (xt - t * self.mu)


class SmoothField(VelocityModel):
    """A small tanh network of (x, t): smooth in t, so tight adaptive solves are cheap."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.shape = (d,)
        self.net = nn.Sequential(nn.Linear(d + 1, 32), nn.Tanh(), nn.Linear(32, d))

    def velocity(self, xt: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        return self.net(torch.cat([xt, t[:, None]], dim=1))


MEAN = torch.tensor([10.0, -3.0, 0.5])
STD = torch.tensor([0.1, 4.0, 1.5])


def test_standardization_log_det_puts_densities_in_data_units():
    mu, sigma = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.7, 1.3, 2.0])
    flow = FlowModel(GaussianField(mu, sigma), MEAN, STD).to(F64)
    # z = (x - mean) / std ~ N(mu, sigma^2)  =>  x ~ N(mean + std mu, (std sigma)^2)
    exact = Normal(MEAN.double() + STD.double() * mu.double(), (STD * sigma).double())
    x = exact.sample((40,))
    r = flow.log_prob_with_stats(x, **TIGHT)
    torch.testing.assert_close(r.log_prob, exact.log_prob(x).sum(1), rtol=0, atol=1e-7)
    assert r.x.shape == (40, 3) and torch.equal(r.stderr, torch.zeros(40, dtype=F64))
    # the same density from the forward pass, at the samples it draws
    s = flow.sample_and_log_prob(40, seed=0, **TIGHT)
    torch.testing.assert_close(s.log_prob, exact.log_prob(s.x).sum(1), rtol=0, atol=1e-7)


def test_default_log_prob_is_exact_above_trainings_threshold_and_within_0_01_nats():
    d = 24  # above training's auto threshold (16), below log_prob's (64): exact
    g = torch.Generator().manual_seed(2)
    mu, sigma = torch.randn(d, generator=g), 0.5 + torch.rand(d, generator=g)
    flow = FlowModel(GaussianField(mu, sigma), torch.zeros(d), torch.ones(d))
    x = mu + sigma * torch.randn(16, d, generator=g)  # float32, as a user's points
    exact = Normal(mu.double(), sigma.double()).log_prob(x.double()).sum(1)
    r = flow.log_prob_with_stats(x)  # every option at its default
    assert torch.equal(r.stderr, torch.zeros(16))
    assert (r.log_prob.double() - exact).abs().max() < 0.01
    assert resolve_divergence("auto", d) == "hutchinson"  # CNF training keeps its own choice
    n = LOG_PROB_EXACT_MAX_DIM + 1
    wide = FlowModel(GaussianField(torch.zeros(n), torch.ones(n)), torch.zeros(n), torch.ones(n))
    above = wide.log_prob_with_stats(torch.zeros(4, n), solver="rk4", steps=2)
    assert above.stderr is not None and above.stderr.shape == (4,)  # Hutchinson, 4 probes


def test_hutchinson_in_high_dimension_agrees_with_the_closed_form_within_its_stderr():
    d = 24
    g = torch.Generator().manual_seed(0)
    mu, sigma = torch.randn(d, generator=g), 0.5 + torch.rand(d, generator=g)
    flow = FlowModel(GaussianField(mu, sigma), torch.zeros(d), torch.ones(d)).to(F64)
    x = (mu + sigma * torch.randn(200, d, generator=g)).double()
    exact = Normal(mu.double(), sigma.double()).log_prob(x).sum(1)
    # this field acts on each feature alone: its Jacobian is diagonal, and Rademacher probes
    # then give the trace exactly (eps_i^2 = 1), with zero spread
    hutchinson = {"divergence": "hutchinson", "solver": "rk4", "steps": 20}
    rademacher = flow.log_prob_with_stats(x, probes=2, **hutchinson)
    torch.testing.assert_close(rademacher.log_prob, exact, rtol=0, atol=1e-5)
    assert rademacher.stderr.abs().max() < 1e-10
    r = flow.log_prob_with_stats(x, probes=8, probe="gaussian", **hutchinson)
    z = (r.log_prob - exact) / r.stderr
    assert (z.abs() < 3).float().mean() > 0.95 and r.stderr.min() > 0
    assert (r.log_prob - exact).mean().abs() < 4 * r.stderr.square().sum().sqrt() / 200
    options = {"probes": 8, "probe": "gaussian"} | hutchinson
    same = flow.log_prob_with_stats(x, **options)
    torch.testing.assert_close(same.log_prob, r.log_prob)  # seeded: reproducible
    other = flow.log_prob_with_stats(x, seed=1, **options)
    assert not torch.equal(other.log_prob, r.log_prob)


def test_joint_pass_equals_the_log_density_computed_afterwards():
    torch.manual_seed(0)
    flow = FlowModel(SmoothField(2), MEAN[:2], STD[:2]).to(F64)
    r = flow.sample_and_log_prob(300, seed=3, **TIGHT)
    torch.testing.assert_close(r.log_prob, flow.log_prob(r.x, **TIGHT), rtol=0, atol=1e-6)
    # on a fixed grid the samples are those of sample() with the same seed
    flow = flow.float()
    x_grid = flow.sample_and_log_prob(50, seed=4, solver="rk4", steps=8).x
    assert torch.equal(x_grid, flow.sample(50, seed=4, solver="rk4", steps=8))


def test_batches_give_the_same_log_densities():
    torch.manual_seed(1)
    flow = FlowModel(SmoothField(3), MEAN, STD)
    x = MEAN + STD * torch.randn(25, 3)
    whole = flow.log_prob(x, solver="rk4", steps=6)
    torch.testing.assert_close(flow.log_prob(x, solver="rk4", steps=6, batch_size=7), whole)


LOGIT = LogitTransform(low=0.0, high=17.0, alpha=0.05)


def test_logit_log_det_puts_densities_of_bounded_data_in_data_units():
    mu, sigma = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.7, 1.3, 2.0])
    mean, std = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 2.0, 0.5])
    flow = FlowModel(GaussianField(mu, sigma), mean, std, logit=LOGIT).to(F64)
    # y = logit(x) ~ N(mean + std mu, (std sigma)^2), so log p(x) = log p_y(y) + log |dy/dx|
    exact = Normal(mean.double() + std.double() * mu.double(), (std * sigma).double())
    s = flow.sample_and_log_prob(40, seed=0, **TIGHT)
    lo, hi = LOGIT.domain
    assert bool(((s.x > lo) & (s.x < hi)).all())
    expected = exact.log_prob(LOGIT.forward(s.x)).sum(1) + LOGIT.log_abs_det(s.x)
    torch.testing.assert_close(s.log_prob, expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(flow.log_prob(s.x, **TIGHT), expected, rtol=0, atol=1e-7)
    with pytest.raises(FlowmatchError, match="outside"):
        flow.log_prob(torch.tensor([[-5.0, 1.0, 1.0]], dtype=F64))


def test_a_1d_density_through_a_logit_integrates_to_one_over_its_range():
    torch.manual_seed(0)
    flow = FlowModel(SmoothField(1), torch.tensor([0.3]), torch.tensor([1.5]), logit=LOGIT)
    flow = flow.to(F64)
    lo, hi = LOGIT.domain
    xs = torch.linspace(lo, hi, 4002, dtype=F64)[1:-1, None]  # (4000, 1) open interval
    log_p = flow.log_prob(xs, solver="rk4", steps=20)
    mass = log_p.exp().sum() * (xs[1, 0] - xs[0, 0])
    assert abs(mass.item() - 1.0) < 1e-3, mass


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("lp") / "run"
    cfg = TrainConfig(
        data="8gaussians", steps=200, batch_size=256, model=ModelConfig(width=32, depth=2),
        log_every=100, checkpoint_every=200, threads=1,
    )  # fmt: skip
    train(cfg, run)
    return flowmatch.load(run)


def test_a_trained_2d_density_integrates_to_one(trained):
    lim, n = 8.0, 120  # the data's std is 2: four of them on each side
    xs = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(xs, xs, indexing="ij")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (n^2, 2)
    log_p = trained.log_prob(grid, solver="rk4", steps=10)
    mass = log_p.double().exp().sum() * (xs[1] - xs[0]).double() ** 2
    assert abs(mass.item() - 1.0) < 0.01, mass


def test_a_trained_model_scores_its_own_samples_consistently(trained):
    # forward and backward rk4 on the same nodes: they agree to the solver's O(h^4)
    options = {"solver": "rk4", "steps": 20}
    r = trained.sample_and_log_prob(200, seed=0, **options)
    diff = (r.log_prob - trained.log_prob(r.x, **options)).abs()
    assert diff.mean() < 2e-4 and diff.max() < 2e-3, diff.max()


def test_the_default_log_prob_meets_the_bar_at_every_point_against_the_closed_form():
    # float32, no options, points from the mode to far in the tails
    mu, sigma = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.3, 1.3, 2.0])
    flow = FlowModel(GaussianField(mu, sigma), MEAN, STD)
    exact = Normal(MEAN.double() + STD.double() * mu.double(), (STD * sigma).double())
    x = exact.sample((500,))
    x = torch.cat([x, exact.mean + 5 * exact.stddev * torch.tensor([[1.0, -1.0, 1.0]])])
    err = (flow.log_prob(x.float()).double() - exact.log_prob(x).sum(dim=1)).abs()
    assert err.max() <= 0.01, err.max()


def test_gauss_nodes_through_the_flow_model_match_the_closed_form():
    mu, sigma = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([0.7, 1.3, 2.0])
    flow = FlowModel(GaussianField(mu, sigma), MEAN, STD).to(F64)
    exact = Normal(MEAN.double() + STD.double() * mu.double(), (STD * sigma).double())
    x = exact.sample((50,))
    r = flow.log_prob_with_stats(x, solver="rk38", steps=16, divergence_nodes=2)
    torch.testing.assert_close(r.log_prob, exact.log_prob(x).sum(dim=1), rtol=0, atol=1e-4)
    assert r.nfe == 16 * (3 * 4 + 2)


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        (torch.zeros(4, 3), {}, "3 features per sample but 2 are expected"),
        (torch.zeros(4), {}, "must have shape"),
        (torch.tensor([[0.0, math.nan]]), {}, "non-finite"),
        (torch.zeros(0, 2), {}, "empty"),
        ([[0.0, 1.0]], {}, "must be a torch.Tensor"),
        (torch.zeros(4, 2), {"divergence": "trace"}, "unknown divergence"),
        (torch.zeros(4, 2), {"divergence": "hutchinson", "probes": 0}, "probes"),
        (torch.zeros(4, 2), {"probe": "uniform"}, "unknown probe distribution"),
        (torch.zeros(4, 2), {"batch_size": 0}, "batch_size"),
        (torch.zeros(4, 2), {"solver": "rk45"}, "unknown solver"),
        (torch.zeros(4, 2), {"atol": -1.0}, "atol must be a positive number"),
        (torch.zeros(4, 2), {"error_norm": "max"}, "unknown error norm"),
        (torch.zeros(4, 2), {"divergence_nodes": 2}, "needs a fixed-grid solver"),
    ],
)
def test_bad_input_is_rejected_in_one_line(x, kwargs, message):
    flow = FlowModel(SmoothField(2), torch.zeros(2), torch.ones(2))
    with pytest.raises(FlowmatchError, match=message) as info:
        flow.log_prob(x, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_sampling_options_are_rejected():
    flow = FlowModel(SmoothField(2), torch.zeros(2), torch.ones(2))
    for n in (0, 2.5):
        with pytest.raises(FlowmatchError, match="number of samples"):
            flow.sample_and_log_prob(n)
    with pytest.raises(FlowmatchError, match="unknown divergence"):
        flow.sample_and_log_prob(3, divergence="nope")
