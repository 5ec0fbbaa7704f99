"""LogitTransform: inverse round trip, log-det against autograd, walls, bad parameters."""

from __future__ import annotations

import math

import pytest
import torch

from flowmatch.data.logit import LogitTransform
from flowmatch.errors import FlowmatchError

F64 = torch.float64


@pytest.mark.parametrize("alpha", [1e-4, 0.01, 0.2])
def test_forward_and_inverse_are_inverses(alpha):
    t = LogitTransform(low=-2.0, high=15.0, alpha=alpha)
    g = torch.Generator().manual_seed(0)
    x = -2.0 + 17.0 * torch.rand(200, 5, generator=g, dtype=F64)  # (200, 5) inside [low, high)
    torch.testing.assert_close(t.inverse(t.forward(x)), x, rtol=0, atol=1e-10)
    y = 3 * torch.randn(200, 5, generator=g, dtype=F64)
    torch.testing.assert_close(t.forward(t.inverse(y)), y, rtol=0, atol=1e-8)


def test_log_det_matches_the_autograd_jacobian():
    t = LogitTransform(low=0.0, high=17.0, alpha=0.01)
    g = torch.Generator().manual_seed(1)
    x = 17.0 * torch.rand(6, 4, generator=g, dtype=F64)  # (6, 4)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(t.forward, x[i])  # (4, 4), diagonal
        sign, logdet = torch.linalg.slogdet(jac)
        assert sign > 0
        torch.testing.assert_close(t.log_abs_det(x[i : i + 1])[0], logdet, rtol=0, atol=1e-10)


def test_the_range_walls_land_at_plus_minus_logit_alpha():
    t = LogitTransform(low=0.0, high=17.0, alpha=0.05)
    walls = t.forward(torch.tensor([0.0, 17.0], dtype=F64))
    wall = math.log(0.95 / 0.05)
    torch.testing.assert_close(walls, torch.tensor([-wall, wall], dtype=F64))
    lo, hi = t.domain  # the whole real line maps back inside the widened range
    x = t.inverse(torch.tensor([-40.0, 40.0], dtype=F64))
    assert lo <= x[0] < 0 and 17 < x[1] <= hi
    t.check_inside(torch.tensor([lo + 1e-3, hi - 1e-3]))
    with pytest.raises(FlowmatchError, match="outside"):
        t.check_inside(torch.tensor([lo - 1e-3]))


@pytest.mark.parametrize(
    "low, high, alpha, message",
    [
        (0.0, 1.0, 0.0, "logit alpha must be in"),
        (0.0, 1.0, 0.5, "logit alpha must be in"),
        (1.0, 1.0, 0.1, "low < high"),
        (0.0, math.inf, 0.1, "low < high"),
    ],
)
def test_bad_parameters_are_rejected(low, high, alpha, message):
    with pytest.raises(FlowmatchError, match=message):
        LogitTransform(low, high, alpha)


def test_a_record_round_trips_and_a_damaged_one_is_rejected():
    t = LogitTransform(low=0.0, high=17.0, alpha=0.01)
    assert LogitTransform.from_dict(t.to_dict()) == t
    with pytest.raises(FlowmatchError, match="damaged"):
        LogitTransform.from_dict({"low": 0.0})
