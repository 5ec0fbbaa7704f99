"""Reverse KL against energies with a known normalizer; the fit report; fit_energy."""

import math

import numpy as np
import pytest
import torch

from flowmatch.data.energies import Energy
from flowmatch.errors import FlowmatchError
from flowmatch.flows import DiscreteFlowModel, ElementwiseAffine, FlowStack, planar_stack
from flowmatch.flows.variational import (
    effective_sample_size,
    evaluate_energy_fit,
    grid_log_normalizer,
    reverse_kl_loss,
)
from flowmatch.training.energy import fit_energy

F64 = torch.float64
M, SIGMA = torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([0.8, 1.5], dtype=F64)
BOX = (-12.0, 12.0, -12.0, 12.0)  # the Gaussian's mass outside is below 1e-15


def gaussian_energy(z):
    """U = sum_i ((z_i - m_i) / sigma_i)^2 / 2, so Z = 2 pi sigma_1 sigma_2."""
    return 0.5 * (((z - M.to(z)) / SIGMA.to(z)) ** 2).sum(dim=1)


LOG_Z = math.log(2 * math.pi * float(SIGMA.prod()))


def gaussian_q(shift, log_scale):
    """q = N(shift, diag exp(2 log_scale)) as a one-layer flow."""
    layer = ElementwiseAffine(2)
    with torch.no_grad():
        layer.shift.copy_(torch.tensor(shift))
        layer.log_scale.copy_(torch.tensor(log_scale))
    return DiscreteFlowModel(FlowStack([layer]), (2,), torch.zeros(2), torch.ones(2)).double()


def kl_gaussians(shift, log_scale):
    """KL(N(c, diag tau^2) || N(m, diag sigma^2)) in closed form."""
    c, tau = torch.tensor(shift, dtype=F64), torch.tensor(log_scale, dtype=F64).exp()
    terms = torch.log(SIGMA / tau) + (tau**2 + (c - M) ** 2) / (2 * SIGMA**2) - 0.5
    return float(terms.sum())


def ess_limit(shift, log_scale):
    """The large-n limit of Kish's ESS fraction, 1 / int p^2 / q, by 1-D quadrature."""
    total = 1.0
    for c, ls, m, s in zip(shift, log_scale, M.tolist(), SIGMA.tolist(), strict=True):
        x = np.linspace(-40, 40, 400_001)
        tau = math.exp(ls)
        log_p = -0.5 * ((x - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
        log_q = -0.5 * ((x - c) / tau) ** 2 - math.log(tau * math.sqrt(2 * math.pi))
        total *= np.trapezoid(np.exp(2 * log_p - log_q), x)
    return 1.0 / total


CASES = [([0.5, -1.0], [math.log(0.8), math.log(1.5)]), ([0.2, -0.5], [0.0, 0.3])]


@pytest.mark.parametrize("shift, log_scale", CASES)
def test_free_energy_is_kl_minus_log_z(shift, log_scale):
    q = gaussian_q(shift, log_scale)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        r = q.rsample_and_log_prob(200_000, g)
        values = r.log_prob + gaussian_energy(r.x)
        estimate = float(reverse_kl_loss(q, gaussian_energy, 200_000, g))
    se = float(values.std()) / math.sqrt(200_000)
    assert abs(estimate - (kl_gaussians(shift, log_scale) - LOG_Z)) < 4 * se + 1e-12


@pytest.mark.parametrize("shift, log_scale", CASES)
def test_report_recovers_kl_log_z_and_ess_of_gaussians(shift, log_scale):
    q = gaussian_q(shift, log_scale)
    r = evaluate_energy_fit(
        q, gaussian_energy, BOX, n=40_000, grid=300, generator=torch.Generator().manual_seed(1)
    )
    kl = kl_gaussians(shift, log_scale)
    assert abs(r.log_z - LOG_Z) < 1e-8
    assert abs(r.kl - kl) < 4 * r.bound_se + 1e-12
    assert abs(r.kl_grid - kl) < 1e-6
    assert r.mass_outside == 0.0
    assert abs(r.ess - ess_limit(shift, log_scale)) < 0.03
    assert abs(r.log_z_is - LOG_Z) < 0.02
    if kl == 0:
        assert r.ess == pytest.approx(1.0) and abs(r.bound + LOG_Z) < 1e-9


def test_monte_carlo_and_grid_kl_agree_for_a_planar_flow():
    """log q from the forward pass (draws) and from the inverse (grid) must tell one story."""
    torch.manual_seed(2)
    stack = planar_stack(2, 6).double()
    with torch.no_grad():
        for layer in stack.layers[1:]:
            layer.u.copy_(torch.randn(2))
    q = DiscreteFlowModel(stack, (2,), torch.zeros(2), torch.ones(2)).double()
    r = evaluate_energy_fit(
        q, gaussian_energy, BOX, n=40_000, grid=400, generator=torch.Generator().manual_seed(3)
    )
    assert r.kl > 0.05  # a real mismatch, not the trivial case
    assert abs(r.kl - r.kl_grid) < 4 * r.bound_se + 2e-3


def test_box_truncation_is_accounted_for():
    """q = p on a box that cuts off mass: KL(q_B || p_B) = 0 and q(B) is reported."""
    q = gaussian_q(M.tolist(), SIGMA.log().tolist())
    box = (-0.5, 1.5, -2.0, 0.0)
    r = evaluate_energy_fit(
        q, gaussian_energy, box, n=40_000, grid=300, generator=torch.Generator().manual_seed(4)
    )
    inside = math.erf(1 / (0.8 * math.sqrt(2))) * math.erf(1 / (1.5 * math.sqrt(2)))
    assert abs((1 - r.mass_outside) - inside) < 0.01
    assert abs(r.kl) < 4 * r.bound_se and abs(r.kl_grid) < 1e-6
    # draws outside the box carry no weight: the ESS is the fraction inside
    assert r.ess == pytest.approx(1 - r.mass_outside)
    assert abs(r.log_z - (LOG_Z + math.log(inside))) < 1e-4


def test_grid_normalizer_and_ess_helpers():
    assert abs(grid_log_normalizer(gaussian_energy, BOX, 200) - LOG_Z) < 1e-8
    assert effective_sample_size(torch.zeros(10)) == pytest.approx(1.0)
    one = torch.full((10,), -math.inf)
    one[3] = 2.0
    assert effective_sample_size(one) == pytest.approx(0.1)
    assert effective_sample_size(torch.full((4,), -math.inf)) == 0.0


def test_fit_energy_learns_a_gaussian_from_a_user_function():
    flow, fit = fit_energy(
        gaussian_energy,
        layers=1,
        steps=300,
        lr=2e-2,
        box=(-8, 8, -8, 8),
        grid=200,
        report_samples=4000,
    )
    assert fit.report.kl < 0.02 and fit.report.ess > 0.95
    assert fit.energy.name == "gaussian_energy" and fit.energy.box == (-8.0, -8.0 + 16, -8.0, 8.0)
    x = flow.sample(2000, seed=0)
    assert torch.allclose(x.mean(0), M.float(), atol=0.15)


def test_fit_energy_is_deterministic():
    a, _ = fit_energy("U2", layers=2, steps=10, grid=20, report_samples=100)
    b, _ = fit_energy("U2", layers=2, steps=10, grid=20, report_samples=100)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize(
    "energy, kwargs, fragment",
    [
        ("U9", {}, "'U9'; choose one of: U1"),
        (3.0, {}, "energy must be a name"),
        (lambda z: z, {}, "must map (N, 2) points to (N,) values"),
        (lambda z: z[:, 0].log(), {}, "not finite everywhere"),
        (lambda z: z.foo(), {}, "failed on a (49, 2) batch"),
        ("U1", {"box": (1, 0, 0, 1)}, "min < max"),
        ("U1", {"box": (0, 1, 0)}, "4 finite numbers"),
        ("U1", {"steps": 0}, "steps must be an integer >= 1"),
        ("U1", {"layers": 0}, "layers must be an integer >= 1"),
        ("U1", {"lr": -1.0}, "lr must be a finite number > 0"),
        ("U1", {"activation": "relu"}, "unknown planar activation"),
    ],
)
def test_bad_energies_and_settings_are_rejected(energy, kwargs, fragment):
    with pytest.raises(FlowmatchError) as err:
        fit_energy(energy, **{"steps": 1, **kwargs})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_energy_objects_keep_their_box():
    e = Energy("flat", lambda z: torch.zeros(z.shape[0], dtype=z.dtype), (0.0, 2.0, 0.0, 1.0))
    assert abs(grid_log_normalizer(e, e.box, 10) - math.log(2.0)) < 1e-12
