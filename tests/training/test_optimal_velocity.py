"""Flow matching learns E[x1 - x0 | x_t = x], which is linear in x for Gaussian data."""

import torch

from flowmatch.models import ModelConfig
from flowmatch.training import Batch, FlowMatching, TrainConfig


def optimal_velocity(x, t, mu, s):
    """E[x1 - x0 | x_t = x] for x0 ~ N(0, I), x1 ~ N(mu, diag(s^2)), x_t = (1-t) x0 + t x1.

    Per coordinate, (x_t, x1 - x0) is jointly Gaussian with var x_t = (1-t)^2 + t^2 s^2 and
    cov(x_t, x1 - x0) = t s^2 - (1 - t), so the conditional mean is a linear regression.
    """
    t = t[:, None]
    var = (1 - t) ** 2 + t**2 * s**2
    cov = t * s**2 - (1 - t)
    return mu + cov / var * (x - t * mu)


def test_trained_mlp_approaches_the_gaussian_optimum():
    torch.manual_seed(0)
    mu, s = torch.tensor([1.0, -0.5]), torch.tensor([0.5, 1.5])
    cfg = TrainConfig(model=ModelConfig(width=64, depth=2))
    method = FlowMatching(cfg)
    flow = method.build((2,), torch.zeros(2), torch.ones(2))
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(1500):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * (1 - step / 1500) + 1e-4
        x1 = mu + s * torch.randn(512, 2, generator=g)
        x0 = flow.noise(512, g)  # the independent coupling: x0 ~ N(0, I) as drawn
        loss = method.loss(flow, Batch(x0, x1), g)
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = torch.rand(4000, generator=g) * 0.8 + 0.1  # away from the ends, where the field is steep
    x0, x1 = torch.randn(4000, 2, generator=g), mu + s * torch.randn(4000, 2, generator=g)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    target = optimal_velocity(xt, t, mu, s)
    with torch.no_grad():
        err = (flow.velocity(xt, t) - target).square().mean()
    # The conditional targets x1 - x0 scatter around the optimum with variance of order 1;
    # the network must be far closer to the optimum than that.
    spread = ((x1 - x0) - target).square().mean()
    assert err < 0.02 * spread, (err.item(), spread.item())
