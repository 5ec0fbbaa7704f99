"""Every kind of flow against the Flow interface: inverses, log-densities, save/load, aliases."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.distributions import MultivariateNormal

from flowmatch import Flow, FlowModel
from flowmatch.data.logit import LogitTransform
from flowmatch.flows import DiscreteFlowModel, ElementwiseAffine, PlanarLayer, planar_stack
from flowmatch.models import MLPVelocity, VelocityModel

F64 = torch.float64
MEAN, STD = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.5])
CLASSES = 3
TIGHT = {"solver": "dopri5", "atol": 1e-10, "rtol": 1e-10}  # the ODE's error far below 1e-6


def continuous(seed: int, *, standardized: bool = False, logit: bool = False, classes: int = 0):
    torch.manual_seed(seed)
    velocity = MLPVelocity(2, 16, 2, time_embed_dim=8, time_max_freq=1.0, num_classes=classes)
    mean, std = (MEAN, STD) if standardized else (torch.zeros(2), torch.ones(2))
    transform = LogitTransform(low=-3.0, high=4.0, alpha=0.05) if logit else None
    return FlowModel(velocity, mean, std, logit=transform).to(F64)


def discrete(seed: int, *, activation: str = "tanh", affine: bool = True):
    """Planar layers far from their near-identity initialization, in non-trivial units."""
    torch.manual_seed(seed)
    stack = planar_stack(2, 4, activation, affine=affine).to(F64)
    with torch.no_grad():
        for layer in stack.layers:
            if isinstance(layer, ElementwiseAffine):
                layer.log_scale.copy_(torch.tensor([0.3, -0.2]))
                layer.shift.copy_(torch.tensor([0.5, -1.0]))
            elif isinstance(layer, PlanarLayer):
                layer.u.copy_(torch.randn(2))
    return DiscreteFlowModel(stack, (2,), MEAN, STD).to(F64)


KINDS: dict[str, Callable[[int], Flow]] = {
    "continuous": lambda seed: continuous(seed),
    "continuous-standardized": lambda seed: continuous(seed, standardized=True),
    "continuous-logit": lambda seed: continuous(seed, standardized=True, logit=True),
    "continuous-conditional": lambda seed: continuous(seed, classes=CLASSES),
    "planar-tanh": lambda seed: discrete(seed),
    "planar-leaky-relu": lambda seed: discrete(seed, activation="leaky_relu"),
    "planar-tanh-no-affine": lambda seed: discrete(seed, affine=False),
    "planar-leaky-relu-no-affine": lambda seed: discrete(
        seed, activation="leaky_relu", affine=False
    ),
}


def options(flow: Flow) -> dict:
    """The ODE options, for a flow that integrates an ODE only."""
    return TIGHT if flow.integrates_ode else {}


def condition(flow: Flow, n: int) -> Tensor | None:
    """Labels 0, 1, 2, 0, ... for a conditional flow, else None."""
    conditional = isinstance(flow, FlowModel) and flow.velocity.condition is not None
    return torch.arange(n) % CLASSES if conditional else None


@pytest.fixture(params=list(KINDS))
def kind(request) -> str:
    return request.param


@pytest.fixture
def flow(kind: str) -> Flow:
    return KINDS[kind](0)


def test_every_kind_is_a_flow(flow):
    assert isinstance(flow, Flow) and isinstance(flow.integrates_ode, bool)
    assert flow.shape == (2,) and flow.dim == 2 and flow.device.type == "cpu"


def test_invert_maps_samples_back_to_their_noise(flow):
    n, opts = 16, options(flow)
    c = condition(flow, n)
    x = flow.sample(n, seed=3, cond=c, **opts)
    assert x.shape == (n, 2) and x.dtype == F64
    noise = flow.noise(n, torch.Generator().manual_seed(3))
    torch.testing.assert_close(flow.invert(x, cond=c, **opts), noise, rtol=0, atol=1e-7)


def test_sample_is_the_end_of_the_trajectory(flow):
    n, opts = 8, options(flow)
    c = condition(flow, n)
    sol = flow.trajectory(n, seed=1, cond=c, **opts)
    assert sol.trajectory.shape == (sol.ts.shape[0], n, 2) and sol.nfe > 0
    assert float(sol.ts[0]) == 0.0 and float(sol.ts[-1]) == 1.0
    torch.testing.assert_close(sol.trajectory[-1], sol.x)
    x = flow.sample(n, seed=1, cond=c, **opts)
    torch.testing.assert_close(x, sol.x, rtol=0, atol=1e-8)
    bare = flow.trajectory(n, seed=1, cond=c, return_trajectory=False, **opts)
    assert bare.trajectory is None
    torch.testing.assert_close(bare.x, x, rtol=0, atol=1e-8)


def test_log_prob_is_the_change_of_variables_of_the_inverse(flow):
    """log p(x) = log N(z; 0, I) + log|det ∂z/∂x| with z = invert(x), the Jacobian by central
    differences of ``invert`` (one call, so an adaptive solver steps alike for every point)."""
    n, d, h, opts = 6, 2, 1e-5, options(flow)
    c = condition(flow, n)
    x = flow.sample(n, seed=2, cond=c, **opts)
    steps = h * torch.eye(d, dtype=F64)  # (d, d)
    points = torch.cat([x[:, None], x[:, None] + steps, x[:, None] - steps], dim=1)  # (n, 2d+1, d)
    cs = None if c is None else c.repeat_interleave(2 * d + 1)
    z = flow.invert(points.reshape(-1, d), cond=cs, **opts).reshape(n, 2 * d + 1, d)
    jacobian = (z[:, 1 : d + 1] - z[:, d + 1 :]) / (2 * h)  # (n, d, d): row j = ∂z/∂x_j
    z0 = z[:, 0]
    expected = -0.5 * z0.square().sum(1) - d / 2 * math.log(2 * math.pi)
    expected = expected + torch.linalg.slogdet(jacobian).logabsdet
    torch.testing.assert_close(flow.log_prob(x, cond=c, **opts), expected, rtol=0, atol=1e-5)
    r = flow.log_prob_with_stats(x, cond=c, **opts)
    torch.testing.assert_close(r.log_prob, flow.log_prob(x, cond=c, **opts))
    torch.testing.assert_close(r.x, z0, rtol=0, atol=1e-7)
    assert torch.equal(r.stderr, torch.zeros(n, dtype=F64)) and r.nfe > 0


def test_sample_and_log_prob_agrees_with_log_prob_of_its_samples(flow):
    n, opts = 12, options(flow)
    c = condition(flow, n)
    r = flow.sample_and_log_prob(n, seed=4, cond=c, **opts)
    assert r.x.shape == (n, 2) and r.log_prob.shape == (n,)
    torch.testing.assert_close(r.x, flow.sample(n, seed=4, cond=c, **opts), rtol=0, atol=1e-8)
    torch.testing.assert_close(r.log_prob, flow.log_prob(r.x, cond=c, **opts), rtol=0, atol=1e-6)


def test_save_and_load_give_the_same_flow(kind, flow, tmp_path):
    n, opts = 8, options(flow)
    c = condition(flow, n)
    save_file(flow.state_dict(), tmp_path / "flow.safetensors")
    other = KINDS[kind](1)  # another initialization, then the saved weights
    assert not torch.equal(
        other.sample(n, seed=0, cond=c, **opts), flow.sample(n, seed=0, cond=c, **opts)
    )
    other.load_state_dict(load_file(tmp_path / "flow.safetensors"))
    x = flow.sample(n, seed=0, cond=c, **opts)
    assert torch.equal(other.sample(n, seed=0, cond=c, **opts), x)
    assert torch.equal(other.log_prob(x, cond=c, **opts), flow.log_prob(x, cond=c, **opts))


def test_deprecated_names_warn_and_give_the_same_values(flow):
    n, opts = 6, options(flow)
    c = condition(flow, n)
    with pytest.warns(DeprecationWarning, match="use Flow.trajectory"):
        old = flow.sample_trajectory(n, seed=5, cond=c, **opts)
    torch.testing.assert_close(old.x, flow.trajectory(n, seed=5, cond=c, **opts).x)
    with pytest.warns(DeprecationWarning, match="use Flow.sample_and_log_prob"):
        old = flow.sample_with_log_prob(n, seed=5, cond=c, **opts)
    new = flow.sample_and_log_prob(n, seed=5, cond=c, **opts)
    torch.testing.assert_close((old.x, old.log_prob), (new.x, new.log_prob))


class LinearField(VelocityModel):
    """v(z, t) = A z, so z_1 = exp(A) z_0: from N(0, I) to N(0, exp(A) exp(A)^T)."""

    def __init__(self, a: Tensor) -> None:
        super().__init__()
        self.shape = (a.shape[0],)
        self.register_buffer("a", a)

    def velocity(self, xt: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        return xt @ self.a.T


def test_a_linear_field_gives_the_closed_form_gaussian():
    a = torch.tensor([[0.3, -0.8], [0.5, -0.2]], dtype=F64)
    flow = FlowModel(LinearField(a), MEAN, STD).to(F64)
    m = torch.linalg.matrix_exp(a)
    # x = mean + std * (exp(A) z0)  =>  x ~ N(mean, diag(std) exp(A) exp(A)^T diag(std))
    scale = STD.double()[:, None] * m
    exact = MultivariateNormal(MEAN.double(), scale_tril=torch.linalg.cholesky(scale @ scale.T))
    r = flow.sample_and_log_prob(50, seed=0, **TIGHT)
    torch.testing.assert_close(r.log_prob, exact.log_prob(r.x), rtol=0, atol=1e-8)
    torch.testing.assert_close(flow.log_prob(r.x, **TIGHT), exact.log_prob(r.x), rtol=0, atol=1e-8)
    noise = flow.noise(50, torch.Generator().manual_seed(0))
    torch.testing.assert_close(r.x, MEAN.double() + noise @ scale.T, rtol=0, atol=1e-8)


def test_the_deprecated_sample_with_return_log_prob_returns_the_pair():
    flow = continuous(0, standardized=True)
    with pytest.warns(DeprecationWarning, match="sample_and_log_prob"):
        x, log_p = flow.sample(10, return_log_prob=True, seed=0, **TIGHT)
    r = flow.sample_and_log_prob(10, seed=0, **TIGHT)
    torch.testing.assert_close((x, log_p), (r.x, r.log_prob))
    with pytest.raises(TypeError, match="unexpected keyword"):
        flow.sample(3, divergence="exact")  # a density option without a density


def test_the_deprecated_discrete_attribute_warns():
    flow = discrete(0)
    with pytest.warns(DeprecationWarning, match="integrates_ode"):
        assert flow.discrete is True


def test_reparametrized_draws_carry_gradients_and_the_plain_ones_do_not():
    flow = discrete(0)
    r = flow.rsample_and_log_prob(64, torch.Generator().manual_seed(0))
    (r.log_prob.mean() + r.x.square().mean()).backward()
    assert all(p.grad is not None for p in flow.parameters())
    plain = flow.sample_and_log_prob(64, seed=0)
    assert not plain.log_prob.requires_grad and not plain.x.requires_grad
    torch.testing.assert_close((plain.x, plain.log_prob), (r.x.detach(), r.log_prob.detach()))
