"""The Euler step as a residual layer: its log-det tends to dt div v, and a stack is the solver."""

import itertools

import pytest
import torch

from flowmatch import FlowModel
from flowmatch.data.logit import LogitTransform
from flowmatch.errors import FlowmatchError
from flowmatch.flows import EulerStep, euler_stack
from flowmatch.likelihood import exact_divergence
from flowmatch.models import MLPVelocity, VelocityModel
from flowmatch.solvers import solve
from tests.fields import F64, random_field, trained_field


@pytest.fixture(scope="module")
def trained() -> FlowModel:
    """A tiny flow-matching field on the eight Gaussians (see tests/fields.py)."""
    return trained_field()


def points(n: int = 32, seed: int = 1) -> torch.Tensor:
    return 1.5 * torch.randn(n, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))


def per_point_jacobians(fn, z):
    """(B, D, D) Jacobians of a batched map (B, D) -> (B, D) that acts row by row."""
    jac = torch.autograd.functional.jacobian(fn, z)  # (B, D, B, D)
    idx = torch.arange(z.shape[0])
    return jac[idx, :, idx, :]


@pytest.mark.parametrize("t", [0.0, 0.4, 0.9])
def test_log_det_matches_slogdet_of_the_autograd_jacobian(t):
    layer = EulerStep(random_field(), t=t, dt=0.3)
    z = points()
    x, ladj = layer(z)
    sign, logabs = torch.linalg.slogdet(per_point_jacobians(lambda y: layer(y)[0], z))
    assert (sign > 0).all()
    torch.testing.assert_close(ladj, logabs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x, z + 0.3 * layer.velocity(z, t))


@pytest.mark.parametrize("field", ["random", "trained"])
def test_log_det_is_dt_div_v_to_first_order(field, trained):
    # log det(I + dt J) = dt tr J - dt^2 tr(J^2) / 2 + O(dt^3): the error of dt div v, per
    # unit dt, halves with dt (first order), with the predicted coefficient
    velocity = random_field() if field == "random" else trained.velocity
    z, t = points(), 0.6
    v_of = EulerStep(velocity, t, 1.0).v
    _, div = exact_divergence(v_of, z)
    jac = EulerStep(velocity, t, 1.0).velocity_and_jacobian(z)[1]  # (B, D, D)
    coefficient = -0.5 * torch.einsum("bij,bji->b", jac, jac)  # -tr(J^2) / 2
    errors = []
    for dt in [0.02, 0.01, 0.005]:
        _, ladj = EulerStep(velocity, t, dt)(z)
        error = (ladj - dt * div) / dt  # (B,)
        torch.testing.assert_close(error / dt, coefficient, rtol=0.05, atol=0.05 * dt)
        errors.append(error.abs().max())
    ratios = [float(a / b) for a, b in itertools.pairwise(errors)]
    assert all(1.9 < r < 2.1 for r in ratios), ratios


@pytest.mark.parametrize("dt", [0.25, -0.1, 1e-3])
def test_inverse_round_trips_with_the_opposite_log_det(dt):
    layer = EulerStep(random_field(), t=0.3, dt=dt)
    z = points(64)
    x, ladj = layer(z)
    z_back, ladj_inv = layer.inverse(x)
    torch.testing.assert_close(z_back, z, rtol=0, atol=1e-13)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=0, atol=1e-13)


def test_inverse_gradient_is_the_inverse_jacobian():
    # the implicit-function gradient: dz/dx = (I + dt J_v(z))^{-1}
    layer = EulerStep(random_field(), t=0.3, dt=0.4)
    x = points(8)
    dz_dx = per_point_jacobians(lambda y: layer.inverse(y)[0], x.clone().requires_grad_(True))
    z = layer.inverse(x)[0]
    jac = layer.velocity_and_jacobian(z)[1]
    expected = torch.linalg.inv(torch.eye(2, dtype=F64) + 0.4 * jac)
    torch.testing.assert_close(dz_dx, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("steps", [4, 16, 64])
def test_the_stack_samples_are_the_euler_solvers(trained, steps):
    flow = euler_stack(trained, steps)
    assert len(flow.stack) == steps and not flow.integrates_ode
    z = torch.randn(128, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    x, _ = flow.stack(z)
    expected = solve(trained.field(), z, 0.0, 1.0, solver="euler", steps=steps).x
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-14)
    # and through the Flow interface, in data units, from the same seed
    ours, theirs = flow.sample(16, seed=5), trained.sample(16, seed=5, solver="euler", steps=steps)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-13)
    torch.testing.assert_close(
        flow.invert(ours), trained.noise(16, torch.Generator().manual_seed(5))
    )


def test_the_stack_log_prob_converges_to_the_odes_at_first_order(trained):
    x = trained.sample(64, seed=1, solver="dopri5", atol=1e-10, rtol=1e-10)
    exact = trained.log_prob(x, atol=1e-10, rtol=1e-10)
    errors = {n: (euler_stack(trained, n).log_prob(x) - exact).abs().mean() for n in [4, 16, 64]}
    # O(1/N): each 4x more layers cuts the error about 4x
    assert 3.0 < errors[4] / errors[16] < 8.0, errors
    assert 3.0 < errors[16] / errors[64] < 6.0, errors
    assert errors[64] < 0.05, errors


def test_the_stack_density_is_its_own_samples_density(trained):
    flow = euler_stack(trained, 8)
    r = flow.sample_and_log_prob(64, seed=2)
    torch.testing.assert_close(flow.log_prob(r.x), r.log_prob, rtol=0, atol=1e-11)


class Folding(VelocityModel):
    """v(x) = (-2 x_1, 0): one step with dt = 1 maps x_1 to -x_1, det(I + dt J) = -1."""

    shape = (2,)

    def velocity(self, xt, t, c):
        return torch.stack([-2.0 * xt[:, 0], torch.zeros_like(xt[:, 0])], dim=1)


def test_refuses_what_it_cannot_do(trained):
    with pytest.raises(FlowmatchError, match="folds space"):
        EulerStep(Folding(), t=0.0, dt=1.0)(points(4))
    EulerStep(Folding(), t=0.0, dt=0.4)(points(4))  # 1 - 2 dt > 0: fine
    with pytest.raises(FlowmatchError, match="folds space"):  # one step of a trained field
        euler_stack(trained, 1).sample(256, seed=0)
    with pytest.raises(FlowmatchError, match="D = 65 is more than 64"):
        EulerStep(MLPVelocity(65, width=8, depth=1), t=0.0, dt=0.1)
    with pytest.raises(FlowmatchError, match="number of Euler steps"):
        euler_stack(trained, 0)
    with pytest.raises(FlowmatchError, match="needs a FlowModel"):
        euler_stack(euler_stack(trained, 2), 2)
    bounded = FlowModel(
        trained.velocity, torch.zeros(2), torch.ones(2), logit=LogitTransform(0.0, 1.0, 0.05)
    )
    with pytest.raises(FlowmatchError, match="no logit transform"):
        euler_stack(bounded, 2)
    with pytest.raises(FlowmatchError, match=r"shape \(B, 2\)"):
        EulerStep(random_field(), t=0.0, dt=0.1)(torch.zeros(3, 3, dtype=F64))
