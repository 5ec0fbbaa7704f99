"""Straightness and path energy: zero for straight fields, the arc formula for rotations."""

import math

import pytest
import torch

from flowmatch.metrics import gaussian_w2, normalized_path_energy, path_statistics
from flowmatch.solvers import solve


def gaussian_ot_field(T):
    """The OT interpolation x_t = ((1 - t) I + t T) x0 between N(0, I) and N(0, T^2):
    v(x, t) = (T - I) ((1 - t) I + t T)^{-1} x, whose trajectories are straight lines."""
    eye = torch.eye(T.shape[0], dtype=T.dtype)

    def f(t, x):
        m = (1 - t) * eye + t * T
        return torch.linalg.solve(m, x.T).T @ (T - eye).T

    return f


def spd(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    return a @ a.T / 3 + 0.5 * torch.eye(3, dtype=torch.float64)


@pytest.mark.parametrize("seed", range(3))
def test_an_exactly_straight_field_has_zero_straightness(seed):
    T = spd(seed)
    x0 = torch.randn(200, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    s = path_statistics(gaussian_ot_field(T), x0, solver="rk4", steps=4)  # exact on lines
    assert abs(s.straightness) < 1e-12 and abs(s.normalized_straightness) < 1e-12
    # straight, constant speed: the energy is the chord's, ||(T - I) x0||^2
    chord = (x0 @ (T - torch.eye(3, dtype=T.dtype)).T).square().sum(1).mean().item()
    assert s.path_energy == pytest.approx(chord, rel=1e-9)
    assert torch.allclose(s.x1, x0 @ T.T, atol=1e-9)


def test_a_constant_field_is_straight_even_for_one_euler_step():
    x0 = torch.randn(10, 2, dtype=torch.float64)
    s = path_statistics(lambda t, x: torch.ones_like(x), x0, solver="euler", steps=1)
    assert abs(s.straightness) < 1e-12 and s.path_energy == pytest.approx(2.0)


@pytest.mark.parametrize("solver,steps", [("rk4", 50), ("dopri5", 1)])
def test_a_curved_field_has_the_arc_formula(solver, steps):
    x0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rotation = lambda t, x: torch.stack([-x[:, 1], x[:, 0]], dim=1)  # noqa: E731
    s = path_statistics(rotation, x0, solver=solver, steps=steps)
    # a unit-angular-speed arc of 1 rad: int |v - c|^2 = |x0|^2 - |c|^2, |c| = 2 |x0| sin(1/2)
    expected = x0.square().sum(1) * (1 - 4 * math.sin(0.5) ** 2)
    assert torch.allclose(s.per_sample, expected, rtol=1e-3)
    assert s.straightness > 0.1


def test_euler_straightness_is_a_sum_of_squares():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    net = net.double()
    f = lambda t, x: net(torch.cat([x, t.expand(x.shape[0], 1)], 1))  # noqa: E731
    x0 = torch.randn(64, 2, dtype=torch.float64)
    s = path_statistics(f, x0, solver="euler", steps=7)
    # S_i = sum_k h |v_k - c|^2 computed directly from the Euler states
    sol = solve(f, x0, solver="euler", steps=7, return_trajectory=True)
    c = sol.x - x0
    pts = zip(sol.ts[:-1], sol.trajectory[:-1], strict=True)
    v = torch.stack([f(t.to(x0), x) for t, x in pts])
    direct = ((v - c).square().sum(-1) / 7).sum(0)
    assert torch.allclose(s.per_sample, direct, atol=1e-12)
    assert bool((s.per_sample >= -1e-12).all())


def test_the_optimal_transport_flow_has_zero_normalized_path_energy():
    T = spd(4)
    x0 = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = path_statistics(gaussian_ot_field(T), x0, solver="rk4", steps=20)
    zero, eye = torch.zeros(3), torch.eye(3, dtype=torch.float64)
    w2_sq = gaussian_w2(zero, eye, zero, T @ T) ** 2  # the population W2^2
    assert normalized_path_energy(s.path_energy, w2_sq) < 0.05  # sampling error of 4000 points
    assert normalized_path_energy(2.0 * w2_sq, w2_sq) == pytest.approx(1.0)
