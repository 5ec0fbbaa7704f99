"""Time grids: valid grids, and the min-error grid puts its steps where the field bends."""

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.solvers import TIME_GRIDS, make_time_grid, solve


def late_bend(t, x):
    """Rotation whose angular speed is 0 before t = 0.6 and large after: x(t) is known."""
    w = 8.0 * torch.clamp(t - 0.6, min=0.0)
    return w * torch.stack([-x[:, 1], x[:, 0]], dim=1)


def exact_late_bend(x0):
    angle = torch.tensor(4.0 * 0.4**2, dtype=x0.dtype)  # int_0.6^1 8 (t - 0.6) dt
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * x0[:, 0] - s * x0[:, 1], s * x0[:, 0] + c * x0[:, 1]], dim=1)


@pytest.mark.parametrize("name", list(TIME_GRIDS))
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_grids_run_from_zero_to_one_strictly_increasing(name, steps):
    x0 = torch.randn(32, 2, dtype=torch.float64)
    g = make_time_grid(name, steps, f=late_bend, x0=x0, order=1)
    assert g.shape == (steps + 1,) and g.dtype == torch.float64
    assert g[0].item() == 0.0 and g[-1].item() == 1.0 and bool((g.diff() > 0).all())


def test_min_error_grid_concentrates_steps_where_the_field_bends():
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = make_time_grid("min-error", 6, f=late_bend, x0=x0, order=1)
    assert (g > 0.6).sum() >= 5  # most steps after the bend starts


@pytest.mark.parametrize("solver,order", [("euler", 1), ("midpoint", 2)])
def test_min_error_grid_beats_uniform_on_a_late_bend(solver, order):
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = exact_late_bend(x0)
    err = {}
    for name in ("uniform", "min-error"):
        grid = make_time_grid(name, 4, f=late_bend, x0=x0, order=order)
        err[name] = (solve(late_bend, x0, solver=solver, time_grid=grid).x - exact).norm()
    assert err["min-error"] < 0.75 * err["uniform"]


def test_bad_grid_requests_are_rejected():
    with pytest.raises(FlowmatchError, match="unknown time grid"):
        make_time_grid("bogus", 4)
    with pytest.raises(FlowmatchError, match="fitted to a model"):
        make_time_grid("min-error", 4)
    with pytest.raises(FlowmatchError, match="steps must be"):
        make_time_grid("uniform", 0)
