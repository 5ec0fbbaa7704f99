"""Solvers against ODEs with exact solutions: order, tolerance, round trips, NFE, grids, errors."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.solvers import SOLVERS, ButcherTableau, StepSizeUnderflow, rk_integrate, solve

FIXED = [name for name, spec in SOLVERS.items() if not spec.adaptive]
ADAPTIVE = [name for name, spec in SOLVERS.items() if spec.adaptive]

ROTATION = torch.tensor([[0.0, -2.0], [2.0, 0.0]], dtype=torch.float64)

# name -> (f(t, x), exact(x0, t0, t1))
Problem = tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, float, float], Tensor]]
PROBLEMS: dict[str, Problem] = {
    # dx/dt = -t x  =>  x(t1) = x(t0) exp(-(t1^2 - t0^2) / 2)
    "gaussian_decay": (
        lambda t, x: -t * x,
        lambda x0, t0, t1: x0 * math.exp(-(t1**2 - t0**2) / 2),
    ),
    # dx/dt = A x with A a rotation generator  =>  x(t1) = x(t0) exp(A (t1 - t0))^T
    "rotation": (
        lambda t, x: x @ ROTATION.T,
        lambda x0, t0, t1: x0 @ torch.linalg.matrix_exp(ROTATION * (t1 - t0)).T,
    ),
    # dx/dt = cos(t) x  =>  x(t1) = x(t0) exp(sin t1 - sin t0)
    "cosine_growth": (
        lambda t, x: torch.cos(t) * x,
        lambda x0, t0, t1: x0 * math.exp(math.sin(t1) - math.sin(t0)),
    ),
}

X0 = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.2]], dtype=torch.float64)  # (B, D)


class Counter:
    """A velocity field that counts its calls and checks the time argument."""

    def __init__(self, f: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.f, self.calls = f, 0

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        assert isinstance(t, Tensor) and t.ndim == 0
        assert t.dtype == x.dtype and t.device == x.device
        self.calls += 1
        return self.f(t, x)


def test_registry_lists_every_method() -> None:
    assert FIXED == ["euler", "midpoint", "heun", "rk4", "rk38", "dp5"]
    assert set(ADAPTIVE) >= {"dopri5", "dopri8", "bosh3", "adaptive_heun"}
    for name, spec in SOLVERS.items():
        assert spec.name == name and spec.order >= 1 and spec.description
    assert [SOLVERS[n].order for n in FIXED] == [1, 2, 2, 4, 4, 5]
    assert [SOLVERS[n].stages for n in FIXED] == [1, 2, 2, 4, 4, 6]


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("solver", FIXED)
def test_fixed_solver_converges_at_its_order(problem: str, solver: str) -> None:
    f, exact = PROBLEMS[problem]
    target = exact(X0, 0.0, 1.0)
    # fifth order: on -t x its leading error term is small, so it nears 5 from above slowly
    slack = 0.15 if SOLVERS[solver].order <= 4 else 0.25
    errors = [(solve(f, X0, solver=solver, steps=n).x - target).abs().max() for n in (32, 64)]
    observed = math.log2(errors[0] / errors[1])
    assert abs(observed - SOLVERS[solver].order) < slack, (errors, observed)


# Kutta's third-order method: its last stage combines two slopes, unlike the registry's.
KUTTA3 = ButcherTableau(
    a=((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (-1.0, 2.0, 0.0)),
    b=(1 / 6, 2 / 3, 1 / 6),
    c=(0.0, 0.5, 1.0),
)


def test_custom_tableau_converges_at_its_order() -> None:
    f, exact = PROBLEMS["cosine_growth"]
    target = exact(X0, 0.0, 1.0)
    errors = [
        (rk_integrate(f, X0, torch.linspace(0, 1, n + 1), KUTTA3).x - target).abs().max()
        for n in (32, 64)
    ]
    assert abs(math.log2(errors[0] / errors[1]) - 3) < 0.15


def test_gradients_of_a_dense_tableau_match_finite_differences() -> None:
    grid = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)

    def flow(x0: Tensor, w: Tensor) -> Tensor:
        return rk_integrate(lambda t, x: torch.tanh(x @ w) * t, x0, grid, KUTTA3).x

    w = torch.randn(2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(flow, (X0.clone().requires_grad_(), w.requires_grad_()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"a": ((0.0, 1.0), (1.0, 0.0)), "b": (0.5, 0.5), "c": (1.0, 1.0)}, "lower triangular"),
        ({"a": ((0.0, 0.0), (1.0, 0.0)), "b": (0.5, 0.6), "c": (0.0, 1.0)}, "sum to 1"),
        ({"a": ((0.0, 0.0), (1.0, 0.0)), "b": (0.5, 0.5), "c": (0.0, 0.5)}, "c\\[1\\]"),
        ({"a": ((0.0,),), "b": (0.5, 0.5), "c": (0.0, 1.0)}, "needs a"),
    ],
)
def test_invalid_tableau_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(FlowmatchError, match=message):
        ButcherTableau(**kwargs)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("solver", ADAPTIVE)
def test_adaptive_solver_meets_its_tolerance(problem: str, solver: str) -> None:
    f, exact = PROBLEMS[problem]
    atol = rtol = 1e-5
    for t0, t1 in ((0.0, 1.0), (1.0, 0.0)):
        target = exact(X0, t0, t1)
        x = solve(f, X0, t0, t1, solver=solver, atol=atol, rtol=rtol).x
        assert ((x - target).abs() <= 10 * (atol + rtol * target.abs())).all()


@pytest.mark.parametrize(("solver", "steps", "tol"), [("rk4", 50, 1e-8), ("heun", 200, 1e-4)])
def test_fixed_backward_solve_recovers_x0(solver: str, steps: int, tol: float) -> None:
    f, _ = PROBLEMS["rotation"]
    x1 = solve(f, X0, 0.0, 1.0, solver=solver, steps=steps).x
    back = solve(f, x1, 1.0, 0.0, solver=solver, steps=steps).x
    assert torch.allclose(back, X0, atol=tol, rtol=0)


@pytest.mark.parametrize("solver", ADAPTIVE)
def test_adaptive_backward_solve_recovers_x0(solver: str) -> None:
    f, _ = PROBLEMS["gaussian_decay"]
    x1 = solve(f, X0, solver=solver).x  # atol = rtol = 1e-5
    back = solve(f, x1, 1.0, 0.0, solver=solver).x
    assert torch.allclose(back, X0, atol=1e-4, rtol=0)


@pytest.mark.parametrize("solver", FIXED)
def test_fixed_nfe_is_steps_times_stages(solver: str) -> None:
    f = Counter(PROBLEMS["cosine_growth"][0])
    sol = solve(f, X0, solver=solver, steps=7)
    assert sol.nfe == f.calls == 7 * SOLVERS[solver].stages
    grid = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    f.calls = 0
    assert solve(f, X0, solver=solver, time_grid=grid).nfe == f.calls == 3 * SOLVERS[solver].stages


@pytest.mark.parametrize("solver", ADAPTIVE)
def test_adaptive_nfe_counts_actual_calls(solver: str) -> None:
    f = Counter(PROBLEMS["cosine_growth"][0])
    sol = solve(f, X0.float(), solver=solver, return_trajectory=True)
    assert sol.nfe == f.calls > 0
    assert sol.x.dtype == torch.float32


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("solver", FIXED)
def test_fixed_trajectory_is_the_grid(solver: str, backward: bool) -> None:
    t0, t1 = (1.0, 0.0) if backward else (0.0, 1.0)
    f, _ = PROBLEMS["rotation"]
    sol = solve(f, X0, t0, t1, solver=solver, steps=10, return_trajectory=True)
    assert sol.ts is not None and sol.trajectory is not None
    assert sol.ts.shape == (11,) and sol.trajectory.shape == (11, *X0.shape)
    assert sol.ts[0].item() == t0 and sol.ts[-1].item() == t1
    assert torch.equal(sol.trajectory[0], X0) and torch.equal(sol.trajectory[-1], sol.x)
    assert solve(f, X0, solver=solver, steps=10).trajectory is None


@pytest.mark.parametrize("solver", ["dopri5", "bosh3"])
def test_adaptive_trajectory_at_requested_times(solver: str) -> None:
    f, exact = PROBLEMS["rotation"]
    sol = solve(f, X0, 1.0, 0.0, solver=solver, return_trajectory=True)
    assert sol.ts is not None and sol.trajectory is not None
    assert torch.allclose(sol.ts, torch.linspace(1.0, 0.0, 11, dtype=torch.float64))
    assert sol.trajectory.shape == (11, *X0.shape)
    assert torch.equal(sol.trajectory[0], X0) and torch.equal(sol.trajectory[-1], sol.x)

    times = torch.tensor([0.0, 0.05, 0.3, 0.9, 1.0])
    sol = solve(f, X0, solver=solver, trajectory_times=times, atol=1e-7, rtol=1e-7)
    assert sol.trajectory is not None and sol.trajectory.shape == (5, *X0.shape)
    for t, state in zip(times.tolist(), sol.trajectory, strict=True):
        assert torch.allclose(state, exact(X0, 0.0, t), atol=1e-5)


def test_uniform_time_grid_reproduces_steps() -> None:
    f, _ = PROBLEMS["cosine_growth"]
    for solver in FIXED:
        by_steps = solve(f, X0, solver=solver, steps=20).x
        grid = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)
        assert torch.equal(solve(f, X0, solver=solver, time_grid=grid).x, by_steps)
        grid32 = torch.linspace(0.0, 1.0, 21)  # float32 grid: rounding-level differences only
        assert torch.allclose(solve(f, X0, solver=solver, time_grid=grid32).x, by_steps)


@pytest.mark.parametrize("backward", [False, True])
def test_nonuniform_time_grid_is_accurate(backward: bool) -> None:
    f, exact = PROBLEMS["gaussian_decay"]
    grid = torch.linspace(0.0, 1.0, 41, dtype=torch.float64) ** 2  # dense near t = 0
    t0, t1 = 0.0, 1.0
    if backward:
        grid, t0, t1 = grid.flip(0), 1.0, 0.0
    sol = solve(f, X0, t0, t1, solver="rk4", time_grid=grid, return_trajectory=True)
    assert torch.allclose(sol.x, exact(X0, t0, t1), atol=1e-7, rtol=0)
    assert sol.ts is not None and torch.equal(sol.ts, grid)


@pytest.mark.parametrize(("solver", "tol"), [("euler", 5e-2), ("rk4", 1e-5), ("dopri5", 1e-4)])
def test_any_state_shape_and_float32(solver: str, tol: float) -> None:
    x0 = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))  # (B, C, H, W)
    f = Counter(lambda t, x: torch.cos(t) * x)
    sol = solve(f, x0, solver=solver, steps=50)
    assert sol.x.shape == x0.shape and sol.x.dtype == torch.float32
    assert torch.allclose(sol.x, x0 * math.exp(math.sin(1.0)), rtol=tol, atol=tol)


@pytest.mark.parametrize("solver", ["rk4", "dopri5"])
def test_gradient_flows_through_solve(solver: str) -> None:
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    x0 = X0.clone().requires_grad_(True)
    x1 = solve(lambda t, x: a * x, x0, solver=solver, steps=50, atol=1e-9, rtol=1e-9).x
    (dx0, da) = torch.autograd.grad(x1.sum(), (x0, a))
    expected = math.exp(0.7)
    assert torch.allclose(dx0, torch.full_like(X0, expected), atol=1e-7, rtol=0)
    assert torch.allclose(da, X0.sum() * expected, atol=1e-6, rtol=0)  # d/da x0 e^a = x0 e^a


def test_no_grad_is_respected() -> None:
    x0 = X0.clone().requires_grad_(True)
    with torch.no_grad():
        assert not solve(lambda t, x: -x, x0, solver="heun", steps=3).x.requires_grad


LINEAR = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"solver": "rk5"}, "unknown solver 'rk5'; choose one of: euler, midpoint"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"steps": 2.5}, "steps must be an integer >= 1"),
        ({"atol": 0.0, "solver": "dopri5"}, "atol must be a positive"),
        ({"rtol": -1e-3}, "rtol must be a positive"),
        ({"t0": 0.5, "t1": 0.5}, "t0 and t1 are both 0.5"),
        ({"t1": float("nan")}, "t1 must be finite"),
        ({"time_grid": LINEAR[[0, 2, 1, 3, 4]]}, "strictly increasing"),
        ({"time_grid": LINEAR.flip(0)}, "must start at t0=0.0"),
        ({"time_grid": LINEAR[:-1]}, "must end at t1=1.0"),
        ({"time_grid": LINEAR, "t0": 1.0, "t1": 0.0}, "must start at t0=1.0"),
        ({"time_grid": LINEAR[:, None]}, "1-D tensor"),
        ({"time_grid": LINEAR[:1]}, "at least 2 times"),
        ({"time_grid": LINEAR, "solver": "dopri5"}, "adaptive"),
        ({"trajectory_times": LINEAR, "solver": "rk4"}, "pass time_grid instead"),
        ({"trajectory_times": LINEAR[[0, 1, 1, 4]], "solver": "dopri5"}, "strictly increasing"),
    ],
)
def test_bad_options_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(FlowmatchError, match=message):
        solve(lambda t, x: -x, X0, **kwargs)


@pytest.mark.parametrize("x0", [torch.tensor(1.0), torch.ones(3, dtype=torch.long), [1.0]])
def test_bad_initial_state_raises(x0: object) -> None:
    with pytest.raises(FlowmatchError, match="x0 must be a floating-point tensor"):
        solve(lambda t, x: -x, x0)  # type: ignore[arg-type]


def test_non_finite_initial_state_raises() -> None:
    x0 = X0.clone()
    x0[1, 0] = float("inf")
    with pytest.raises(FlowmatchError, match="x0 contains 1 non-finite"):
        solve(lambda t, x: -x, x0)


def test_an_adaptive_solver_that_cannot_keep_up_fails_in_one_line():
    # dx/dt = x^2 from x(0) = 10 blows up at t = 0.1: the step size underflows
    with pytest.raises(FlowmatchError, match="step size underflowed after") as info:
        solve(lambda t, x: x**2, torch.full((2, 1), 10.0), solver="dopri5")
    assert "\n" not in str(info.value) and "fixed-step" in str(info.value)
    assert isinstance(info.value, StepSizeUnderflow) and "--" not in str(info.value)


def test_sample_norm_holds_the_hard_point_to_the_tolerance_the_batch_norm_dilutes() -> None:
    # one decaying row among 63 at rest: in the batch RMS its error counts 1/64
    rate = torch.zeros(64, 1, dtype=torch.float64)
    rate[0] = 6.0
    x0 = torch.ones(64, 1, dtype=torch.float64)
    exact = math.exp(-6.0)
    err = {}
    for norm in ("batch", "sample"):
        sol = solve(lambda t, x: -rate * x, x0, solver="dopri5", atol=1e-4, rtol=1e-4,
                    error_norm=norm)  # fmt: skip
        err[norm] = abs(sol.x[0, 0].item() - exact)
        assert torch.equal(sol.x[1:], x0[1:])
    assert err["sample"] < err["batch"] / 4


def test_error_norms_and_a_custom_norm() -> None:
    from flowmatch.solvers import ERROR_NORMS, grouped_sample_norm

    e = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    assert ERROR_NORMS["batch"](e).item() == pytest.approx((25 / 6) ** 0.5)
    assert ERROR_NORMS["sample"](e).item() == pytest.approx((25 / 3) ** 0.5)
    assert grouped_sample_norm((2, 1))(e).item() == pytest.approx((25 / 2) ** 0.5)
    # a callable norm is used as given: the max norm is stricter than the RMS, so more steps
    rms = solve(lambda t, x: -x, X0, solver="dopri5", error_norm="batch").nfe
    linf = solve(lambda t, x: -x, X0, solver="dopri5", error_norm=lambda e: e.abs().max()).nfe
    assert linf >= rms
    with pytest.raises(FlowmatchError, match="unknown error norm 'max'"):
        solve(lambda t, x: -x, X0, solver="dopri5", error_norm="max")


def test_rk38_samples_four_distinct_times_per_step() -> None:
    seen: list[float] = []

    def f(t: Tensor, x: Tensor) -> Tensor:
        seen.append(t.item())
        return torch.cos(t) * x

    solve(f, X0, solver="rk38", steps=1)
    assert seen == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
