"""The Rezende–Mohamed energies against an independent numpy transcription of the paper."""

import numpy as np
import pytest
import torch

from flowmatch.data.energies import ENERGIES, WALL_WIDTH, get_energy


def reference(name: str, z: np.ndarray) -> np.ndarray:
    """Table 1 of Rezende & Mohamed (2015), written out with numpy."""
    z1, z2 = z[:, 0], z[:, 1]
    w1 = np.sin(2 * np.pi * z1 / 4)
    w2 = 3 * np.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    if name == "U1":
        r = np.sqrt(z1**2 + z2**2)
        return 0.5 * ((r - 2) / 0.4) ** 2 - np.log(
            np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
        )
    if name == "U2":
        return 0.5 * ((z2 - w1) / 0.4) ** 2
    if name == "U3":
        return -np.log(
            np.exp(-0.5 * ((z2 - w1) / 0.35) ** 2) + np.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
        )
    return -np.log(
        np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2) + np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2)
    )


@pytest.mark.parametrize("name", list(ENERGIES))
def test_energies_match_the_paper(name):
    z = np.random.default_rng(0).uniform(-4, 4, size=(500, 2))
    got = ENERGIES[name](torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(got, reference(name, z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(ENERGIES))
def test_energies_are_stable_far_out_and_differentiable(name):
    z = torch.tensor([[3.9, -3.9], [-4.0, 4.0], [40.0, 0.0]], dtype=torch.float64)
    z.requires_grad_(True)
    u = ENERGIES[name](z)
    assert torch.isfinite(u).all()
    (grad,) = torch.autograd.grad(u.sum(), z)
    assert torch.isfinite(grad).all()


def test_the_wall_confines_only_outside_the_box():
    e = ENERGIES["U2"]
    inside = torch.tensor([[0.0, 0.0], [3.99, -3.99]])
    torch.testing.assert_close(e.confined(inside), e(inside))
    out = torch.tensor([[4.0 + WALL_WIDTH, 0.0]])  # one wall width out
    torch.testing.assert_close(e.confined(out) - e(out), torch.tensor([0.5]))


def test_energy_with_a_custom_box():
    e = get_energy("U1", box=(-3, 3, -2, 2))
    assert e.box == (-3.0, 3.0, -2.0, 2.0) and e.area == 24.0
    assert ENERGIES["U1"].box == (-4.0, 4.0, -4.0, 4.0)  # the registry entry is untouched
