"""Probability paths: endpoints, and u_t equals the time derivative of x_t."""

import pytest
import torch
from torch.func import jvp

from flowmatch.errors import FlowmatchError
from flowmatch.paths import PATHS, get_path


@pytest.mark.parametrize("name", list(PATHS))
def test_ut_is_time_derivative_of_xt(name):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 3, dtype=torch.float64, generator=g)
    x1 = torch.randn(16, 3, dtype=torch.float64, generator=g)
    t = torch.rand(16, dtype=torch.float64, generator=g)
    path = PATHS[name]
    # d/dt x_t along a unit tangent in t, computed by forward-mode autodiff
    _, dxt = jvp(lambda tt: path.sample(x0, x1, tt).xt, (t,), (torch.ones_like(t),))
    torch.testing.assert_close(path.sample(x0, x1, t).ut, dxt)


@pytest.mark.parametrize("name", list(PATHS))
def test_endpoints_are_noise_and_data(name):
    x0, x1 = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    path = PATHS[name]
    torch.testing.assert_close(path.sample(x0, x1, torch.zeros(4, dtype=torch.float64)).xt, x0)
    torch.testing.assert_close(path.sample(x0, x1, torch.ones(4, dtype=torch.float64)).xt, x1)


def test_linear_path_is_the_tutorials():
    x0, x1, t = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
    s = PATHS["linear"].sample(x0, x1, t)
    torch.testing.assert_close(s.xt, (1 - t[:, None]) * x0 + t[:, None] * x1)
    torch.testing.assert_close(s.ut, x1 - x0)


def test_path_broadcasts_over_image_shapes():
    x0, x1, t = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4), torch.rand(3)
    s = PATHS["cosine"].sample(x0, x1, t)
    assert s.xt.shape == s.ut.shape == (3, 1, 4, 4)


def test_unknown_path_is_rejected():
    with pytest.raises(FlowmatchError, match="linear"):
        get_path("spiral")
