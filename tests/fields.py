"""Velocity fields shared by the tests of the Euler layer and of the transport equation."""

from functools import cache

import torch

from flowmatch import FlowModel
from flowmatch.data.toy import eight_gaussians
from flowmatch.models import MLPVelocity

F64 = torch.float64


def random_field(seed: int = 0, dim: int = 2) -> MLPVelocity:
    """A float64 random MLP field, smooth in t (time frequencies up to 4, so differences in t
    of h ~ 1e-2 resolve it; a default MLPVelocity's reach 1000 and need h ~ 1e-4)."""
    torch.manual_seed(seed)
    return MLPVelocity(dim, width=32, depth=2, time_max_freq=4.0).double().requires_grad_(False)


@cache
def trained_field() -> FlowModel:
    """A tiny flow-matching field on the eight Gaussians: 300 Adam steps, float64, one thread.

    Trained once per test session; callers must not change it.
    """
    threads = torch.get_num_threads()  # module fixtures run before conftest's one_thread
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    data = eight_gaussians(4096, g).to(F64)
    mean, std = data.mean(0), data.std(0)
    v = random_field(0).requires_grad_(True)
    opt = torch.optim.Adam(v.parameters(), lr=1e-2)
    for _ in range(300):
        x1 = (eight_gaussians(128, g).to(F64) - mean) / std  # (B, 2) standardized data
        x0 = torch.randn(128, 2, generator=g, dtype=F64)
        t = torch.rand(128, generator=g, dtype=F64)
        xt = torch.lerp(x0, x1, t[:, None])  # the linear path, u_t = x1 - x0
        loss = (v(xt, t) - (x1 - x0)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    return FlowModel(v.requires_grad_(False), mean, std).double()
