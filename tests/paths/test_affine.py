"""Probability paths: endpoints, and u_t equals the time derivative of x_t."""

import math

import pytest
import torch
from torch.func import jvp

from flowmatch.errors import FlowmatchError
from flowmatch.paths import PATHS, AffinePath, LinearSchedule, Schedule, get_path
from flowmatch.training import TrainConfig

SIGMA_MIN = 1e-2  # large enough that a wrong sigma_1 shows at float64 precision


def user_path() -> AffinePath:
    """A user schedule with no derivatives given: they come from autodiff."""
    return AffinePath(
        Schedule.from_functions(lambda t: t**2 * (3 - 2 * t), lambda t: (1 - t) ** 1.5)
    )


# Every registered path, the linear one with a minimum noise, and a user schedule, by a name
# for the test ids: (path, sigma_1).
ALL_PATHS = {
    **{name: (path, 0.0) for name, path in PATHS.items()},
    "linear-sigma-min": (get_path("linear", sigma_min=SIGMA_MIN), SIGMA_MIN),
    "user": (user_path(), 0.0),
}


def _draws(n=16, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, d, dtype=torch.float64, generator=g)
    x1 = torch.randn(n, d, dtype=torch.float64, generator=g)
    t = 0.05 + 0.9 * torch.rand(n, dtype=torch.float64, generator=g)  # inside (0, 1)
    return x0, x1, t


@pytest.mark.parametrize("name", list(ALL_PATHS))
def test_ut_is_time_derivative_of_xt(name):
    x0, x1, t = _draws()
    path, _ = ALL_PATHS[name]
    # d/dt x_t along a unit tangent in t, computed by forward-mode autodiff
    _, dxt = jvp(lambda tt: path.sample(x0, x1, tt).xt, (t,), (torch.ones_like(t),))
    torch.testing.assert_close(path.sample(x0, x1, t).ut, dxt)


@pytest.mark.parametrize("name", list(ALL_PATHS))
def test_ut_matches_central_differences_of_xt(name):
    x0, x1, t = _draws(seed=1)
    path, _ = ALL_PATHS[name]
    h = 1e-6  # central differences in float64: error O(h^2) + O(eps / h), about 1e-10
    dxt = (path.sample(x0, x1, t + h).xt - path.sample(x0, x1, t - h).xt) / (2 * h)
    torch.testing.assert_close(path.sample(x0, x1, t).ut, dxt, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", list(ALL_PATHS))
def test_endpoints_are_noise_and_data(name):
    x0, x1 = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    path, sigma_1 = ALL_PATHS[name]
    torch.testing.assert_close(path.sample(x0, x1, torch.zeros(4, dtype=torch.float64)).xt, x0)
    end = path.sample(x0, x1, torch.ones(4, dtype=torch.float64)).xt
    torch.testing.assert_close(end, x1 + sigma_1 * x0)  # the data, up to sigma_min noise


def test_linear_path_is_the_tutorials():
    x0, x1, t = torch.randn(5, 2), torch.randn(5, 2), torch.rand(5)
    s = PATHS["linear"].sample(x0, x1, t)
    torch.testing.assert_close(s.xt, (1 - t[:, None]) * x0 + t[:, None] * x1)
    torch.testing.assert_close(s.ut, x1 - x0)


def test_sigma_min_path_is_lipmans():
    x0, x1, t = _draws()
    s = get_path("linear", sigma_min=SIGMA_MIN).sample(x0, x1, t)
    tb = t[:, None]
    torch.testing.assert_close(s.xt, tb * x1 + (1 - (1 - SIGMA_MIN) * tb) * x0)
    torch.testing.assert_close(s.ut, x1 - (1 - SIGMA_MIN) * x0)


def test_sigma_min_zero_is_the_plain_linear_path():
    assert get_path("linear", sigma_min=0.0) is PATHS["linear"]
    x0, x1, t = _draws()
    a = AffinePath(LinearSchedule(0.0)).sample(x0, x1, t)
    b = AffinePath(LinearSchedule(1e-300)).sample(x0, x1, t)  # the general, non-lerp branch
    torch.testing.assert_close(a.xt, b.xt)
    torch.testing.assert_close(a.ut, b.ut)


def test_cosine_path_preserves_variance():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    c = PATHS["cosine"].schedule(t)
    torch.testing.assert_close(c.alpha.square() + c.sigma.square(), torch.ones_like(t))
    # for independent unit-variance x0 and x1 the marginal variance is then 1 at every t
    x0, x1 = torch.randn(200_000, 1), torch.randn(200_000, 1)
    xt = PATHS["cosine"].sample(x0, x1, torch.full((200_000,), 0.3)).xt
    assert abs(xt.var().item() - 1) < 0.02


def test_user_schedule_derivatives_by_autodiff_match_given_ones():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    alpha, sigma = (lambda t: t * (2 - t)), (lambda t: (1 - t) ** 2)
    auto = Schedule.from_functions(alpha, sigma)
    given = Schedule.from_functions(alpha, sigma, lambda t: 2 - 2 * t, lambda t: 2 * t - 2)
    a, b = auto(t), given(t)
    torch.testing.assert_close(a.d_alpha, b.d_alpha)
    torch.testing.assert_close(a.d_sigma, b.d_sigma)


def test_user_schedule_trains_like_a_builtin_in_python():
    # the cosine schedule written by hand gives the cosine path
    half_pi = 0.5 * math.pi
    mine = AffinePath(
        Schedule.from_functions(lambda t: torch.sin(half_pi * t), lambda t: torch.cos(half_pi * t))
    )
    x0, x1, t = _draws()
    a, b = mine.sample(x0, x1, t), PATHS["cosine"].sample(x0, x1, t)
    torch.testing.assert_close(a.xt, b.xt)
    torch.testing.assert_close(a.ut, b.ut)


@pytest.mark.parametrize(
    ("alpha", "sigma", "match"),
    [
        (lambda t: t + 0.1, lambda t: 1 - t, "alpha_0 = 0.1"),
        (lambda t: t, lambda t: 2 - t, "sigma_0 = 2"),
        (lambda t: 0.5 * t, lambda t: 1 - t, "alpha_1 = 0.5"),
        (lambda t: t, lambda t: 1 + 0 * t, "sigma_1 = 1"),
        (lambda t: torch.zeros(()), lambda t: 1 - t, "shaped like t"),
        (3.0, lambda t: 1 - t, "alpha must be a function"),
    ],
)
def test_bad_user_schedules_are_rejected(alpha, sigma, match):
    with pytest.raises(FlowmatchError, match=match):
        Schedule.from_functions(alpha, sigma)


def test_path_broadcasts_over_image_shapes():
    x0, x1, t = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4), torch.rand(3)
    for path, _ in ALL_PATHS.values():
        s = path.sample(x0, x1, t)
        assert s.xt.shape == s.ut.shape == (3, 1, 4, 4)


def test_unknown_path_is_rejected():
    with pytest.raises(FlowmatchError, match="linear"):
        get_path("spiral")


@pytest.mark.parametrize("sigma_min", [-0.1, 1.0, float("nan")])
def test_bad_sigma_min_is_rejected(sigma_min):
    with pytest.raises(FlowmatchError, match="sigma_min must be in"):
        get_path("linear", sigma_min=sigma_min)
    with pytest.raises(FlowmatchError, match="--sigma-min"):
        TrainConfig(sigma_min=sigma_min).validate()


def test_sigma_min_is_for_the_linear_path_only():
    with pytest.raises(FlowmatchError, match="linear path only"):
        get_path("cosine", sigma_min=1e-4)
    with pytest.raises(FlowmatchError, match="--sigma-min applies to --path linear"):
        TrainConfig(path="cosine", sigma_min=1e-4).validate()


def test_a_run_saved_before_sigma_min_existed_keeps_the_plain_path():
    saved = TrainConfig().to_dict()
    del saved["sigma_min"]  # a config.json written before the field existed
    cfg = TrainConfig.from_dict(saved)
    assert cfg.sigma_min == 0.0
    assert get_path(cfg.path, cfg.sigma_min) is PATHS["linear"]
