"""Stacks of layers and the run model: summed log-dets, normalized densities, the interface."""

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.flows import (
    DiscreteFlowModel,
    ElementwiseAffine,
    FlowStack,
    PlanarLayer,
    planar_stack,
)
from flowmatch.flows.variational import box_grid

F64 = torch.float64


def stack64(layers=8, activation="tanh", affine=True, seed=0):
    """A float64 stack far from its near-identity initialization."""
    torch.manual_seed(seed)
    flow = planar_stack(2, layers, activation, affine=affine).double()
    with torch.no_grad():
        for layer in flow.layers:
            if isinstance(layer, ElementwiseAffine):
                layer.log_scale.copy_(torch.tensor([0.3, -0.2]))
                layer.shift.copy_(torch.tensor([0.5, -1.0]))
            else:
                layer.u.copy_(torch.randn(2))  # wᵀû anywhere in (-1, inf), û of size ~1
    return flow


@pytest.mark.parametrize("activation", ["tanh", "leaky_relu"])
def test_stack_log_det_is_the_sum_and_matches_slogdet(activation):
    flow = stack64(activation=activation)
    z = torch.randn(10, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    x, ladj = flow(z)
    total, state = torch.zeros(10, dtype=F64), z
    for layer in flow.layers:
        state, step = layer(state)
        total = total + step
    torch.testing.assert_close(ladj, total)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v)[0], z)  # (B, 2, B, 2)
    idx = torch.arange(10)
    sign, logabs = torch.linalg.slogdet(jac[idx, :, idx, :])
    assert (sign > 0).all()
    torch.testing.assert_close(ladj, logabs, rtol=1e-9, atol=1e-9)
    z_back, ladj_inv = flow.inverse(x)
    torch.testing.assert_close(z_back, z, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "leaky_relu"])
def test_density_integrates_to_one(activation):
    """∫ p_K = 1 on a grid: the inverse and all log-dets are right together."""
    flow = stack64(layers=6, activation=activation, seed=2)
    _, points, cell = box_grid((-9.0, 9.0, -9.0, 9.0), 400)
    with torch.no_grad():
        mass = flow.log_prob(points).exp().sum() * cell
    # the midpoint rule is second order for smooth densities; leaky ReLU's kinks cost accuracy
    assert abs(float(mass) - 1.0) < {"tanh": 1e-4, "leaky_relu": 3e-3}[activation]


def test_sample_and_log_prob_agree_with_log_prob():
    flow = stack64(seed=3)
    with torch.no_grad():
        x, log_q = flow.sample_and_log_prob(200, torch.Generator().manual_seed(0))
        torch.testing.assert_close(flow.log_prob(x), log_q, rtol=1e-9, atol=1e-9)


def test_states_run_from_noise_to_the_output():
    flow = stack64(layers=3)
    z = torch.randn(5, 2, dtype=F64)
    states = flow.states(z)
    assert states.shape == (5, 5, 2)  # affine + 3 planar layers, plus the noise
    torch.testing.assert_close(states[0], z)
    torch.testing.assert_close(states[-1], flow(z)[0])


def test_model_log_prob_is_in_data_units():
    """p_x(x) = p_z((x - mean) / std) / prod(std): check against the stack directly, and
    that the density in data units integrates to one."""
    mean, std = torch.tensor([3.0, -1.0]), torch.tensor([2.0, 0.8])  # log-det -log 1.6
    model = DiscreteFlowModel(stack64(layers=4, seed=4), (2,), mean, std).double()
    x = torch.randn(7, 2, dtype=F64) * std + mean
    expected = model.stack.log_prob((x - mean) / std) - torch.log(std).sum()
    torch.testing.assert_close(model.log_prob(x), expected.double())
    _, points, cell = box_grid((-17.0, 23.0, -9.0, 7.0), 400)
    with torch.no_grad():
        mass = model.log_prob(points).exp().sum() * cell
    assert abs(float(mass) - 1.0) < 5e-3  # the grid's error; without the log-det it is 0.6


def test_model_follows_the_flow_interface():
    torch.manual_seed(5)
    model = DiscreteFlowModel(planar_stack(2, 4), (2,), torch.tensor([1.0, 2.0]), torch.ones(2))
    assert not model.integrates_ode
    sol = model.trajectory(16, seed=3)
    assert sol.nfe == 5 and sol.trajectory.shape == (6, 16, 2) and sol.ts.shape == (6,)
    torch.testing.assert_close(sol.ts, torch.linspace(0, 1, 6))
    torch.testing.assert_close(sol.trajectory[-1], sol.x)
    x = model.sample(16, seed=3)
    torch.testing.assert_close(x, sol.x)
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model.invert(x), noise, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.unstandardize(noise), sol.trajectory[0])
    assert model.log_prob(x).shape == (16,)
    assert model.shape == (2,) and model.dim == 2 and model.device.type == "cpu"


def test_model_refuses_options_it_cannot_honour():
    """ODE options change nothing: deprecated (a warning) for one release; others are errors."""
    torch.manual_seed(5)
    model = DiscreteFlowModel(planar_stack(2, 4), (2,), torch.tensor([1.0, 2.0]), torch.ones(2))
    with pytest.warns(DeprecationWarning, match="integrates_ode"):
        sol = model.trajectory(16, seed=3, solver="rk4", steps=7)
    torch.testing.assert_close(sol.x, model.sample(16, seed=3))
    with pytest.warns(DeprecationWarning, match="integrates_ode"):
        log_p = model.log_prob(sol.x, divergence="hutchinson", atol=1e-3)
    torch.testing.assert_close(log_p, model.log_prob(sol.x))
    for call in (
        lambda: model.sample(3, guidance=2.0),
        lambda: model.invert(sol.x, tolerance=1e-3),
        lambda: model.log_prob_with_stats(sol.x, probez=4),
    ):
        with pytest.raises(TypeError, match="unexpected keyword"):
            call()


def test_model_on_image_shaped_data():
    torch.manual_seed(6)
    model = DiscreteFlowModel(planar_stack(12, 3), (3, 2, 2), torch.zeros(12), torch.ones(12))
    x = model.sample(4, seed=0)
    assert x.shape == (4, 3, 2, 2)
    assert model.invert(x).shape == (4, 3, 2, 2) and model.log_prob(x).shape == (4,)
    assert model.trajectory(4, seed=0).trajectory.shape == (5, 4, 3, 2, 2)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda m: m.log_prob(torch.tensor([[0.0, float("nan")]])), "non-finite"),
        (lambda m: m.log_prob(torch.zeros(3, 5)), "5 features per sample but 2"),
        (lambda m: m.invert(torch.zeros(0, 2)), "empty"),
        (lambda m: m.sample(0), "must be an integer >= 1"),
        (lambda m: m.sample(3, cond=torch.zeros(3, 1)), "unconditional"),
    ],
)
def test_model_rejects_bad_input(call, fragment):
    model = DiscreteFlowModel(planar_stack(2, 2), (2,), torch.zeros(2), torch.ones(2))
    with pytest.raises(FlowmatchError) as err:
        call(model)
    assert fragment in str(err.value)


def test_bad_stacks_are_rejected():
    with pytest.raises(FlowmatchError, match="layers >= 1"):
        planar_stack(2, 0)
    with pytest.raises(FlowmatchError, match="at least one layer"):
        FlowStack([])
    with pytest.raises(FlowmatchError, match="same dim"):
        FlowStack([PlanarLayer(2), PlanarLayer(3)])
    with pytest.raises(FlowmatchError, match="has dim 2 but samples of shape"):
        DiscreteFlowModel(planar_stack(2, 1), (3,), torch.zeros(3), torch.ones(3))
