"""Train one peer model (torchcfm or flow_matching) on a benchmark task; run in the peer venv.

This file is executed by ``bench_peers.py`` with the isolated environment's Python, which has
torchcfm and flow-matching but not flowmatch. It imports nothing from flowmatch: the network is
a plain MLP with a sinusoidal time embedding whose parameter names and formula match
``flowmatch.models.MLPVelocity``, so that the driver can load the weights into flowmatch's class
and score every library with one evaluator. Only the loss differs between libraries: each
method draws (t, x_t, u_t) with its library's own path and coupling API. The optimizer, learning
rate schedule, gradient clipping and weight EMA are the same as flowmatch's defaults, and the
data come from the same pools (``.npz`` arrays written by the driver).

Usage (by the driver):
    peer_worker.py METHOD --pool POOL.npz --steps N --batch-size B --width W --depth L
                   --seed S --out OUT.pt
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn

TIME_EMBED_DIM = 32
MAX_FREQ = 1000.0


class BenchMLP(nn.Module):
    """v(x, t) = MLP([x, sin(w t), cos(w t)]), w geometric in [1, 1000]; SiLU hidden layers."""

    def __init__(self, dim: int, width: int, depth: int) -> None:
        super().__init__()
        half = TIME_EMBED_DIM // 2
        self.register_buffer(
            "freqs", torch.exp(torch.linspace(0.0, math.log(MAX_FREQ), half)), persistent=False
        )
        layers: list[nn.Module] = []
        fan_in = dim + TIME_EMBED_DIM
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.SiLU()]
            fan_in = width
        layers.append(nn.Linear(fan_in, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
        angles = t[:, None] * self.freqs
        return self.net(torch.cat([x, angles.sin(), angles.cos()], dim=1))


def lr_factor(step: int, total: int, warmup: int = 100, min_ratio: float = 0.05) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(1, total - warmup), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_loss(method: str):
    """loss(model, x0, x1, generator) for each peer method, through the library's own API."""
    if method in ("torchcfm-icfm", "torchcfm-otcfm"):
        from torchcfm.conditional_flow_matching import (
            ConditionalFlowMatcher,
            ExactOptimalTransportConditionalFlowMatcher,
        )

        cls = (
            ConditionalFlowMatcher
            if method == "torchcfm-icfm"
            else (ExactOptimalTransportConditionalFlowMatcher)
        )
        fm = cls(sigma=0.0)

        def loss(model, x0, x1, g):
            t = torch.rand(x0.shape[0], generator=g)
            t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1, t=t)
            return (model(xt, t) - ut).square().mean()

        return loss
    if method == "fmlib-condot":
        from flow_matching.path import AffineProbPath
        from flow_matching.path.scheduler import CondOTScheduler

        path = AffineProbPath(scheduler=CondOTScheduler())

        def loss(model, x0, x1, g):
            t = torch.rand(x0.shape[0], generator=g)
            s = path.sample(t=t, x_0=x0, x_1=x1)
            return (model(s.x_t, s.t) - s.dx_t).square().mean()

        return loss
    raise SystemExit(f"unknown method {method}")


def own_solver_euler(method: str, model: nn.Module, x0: torch.Tensor, steps: int) -> np.ndarray:
    """Euler samples from the library's own sampler, to cross-check the shared evaluator."""
    if method.startswith("fmlib"):
        from flow_matching.solver import ODESolver

        solver = ODESolver(velocity_model=lambda x, t: model(x, t))
        grid = torch.tensor([0.0, 1.0])
        x = solver.sample(x_init=x0, step_size=1.0 / steps, method="euler", time_grid=grid)
        return x.numpy()
    from torchdyn.core import NeuralODE

    class Field(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, t, x, *args, **kwargs):
            return self.m(x, t.reshape(1).expand(x.shape[0]))

    node = NeuralODE(Field(model), solver="euler", sensitivity="adjoint")
    _, traj = node(x0, torch.linspace(0, 1, steps + 1))
    return traj[-1].numpy()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("method")
    p.add_argument("--pool", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    pool = np.load(args.pool)
    x1_pool = torch.from_numpy(pool["x1_train"]).float()
    x0_pool = torch.from_numpy(pool["x0_train"]).float() if "x0_train" in pool.files else None
    torch.manual_seed(args.seed)
    model = BenchMLP(x1_pool.shape[1], args.width, args.depth)
    ema = [q.detach().clone() for q in model.parameters()]
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    loss_fn = make_loss(args.method)
    g = torch.Generator().manual_seed(args.seed)
    b = args.batch_size
    t_start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_factor(step, args.steps)
        x1 = x1_pool[torch.randint(len(x1_pool), (b,), generator=g)]
        if x0_pool is None:
            x0 = torch.randn(b, x1.shape[1], generator=g)
        else:
            x0 = x0_pool[torch.randint(len(x0_pool), (b,), generator=g)]
        loss = loss_fn(model, x0, x1, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        d = min(args.ema, (2 + step) / (11 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1 - d)
    seconds, cpu_seconds = time.perf_counter() - t_start, time.process_time() - cpu_start
    with torch.no_grad():
        for q, e in zip(params, ema, strict=True):
            q.copy_(e)
        x0_test = torch.from_numpy(pool["x0_test"]).float()
        own = own_solver_euler(args.method, model.eval(), x0_test, 100)
    # the time frequencies are a buffer that the state dict does not hold: the driver rebuilds
    # the network with this cap
    saved = {"state_dict": model.state_dict(), "own_euler100": torch.from_numpy(own)}
    torch.save({**saved, "time_max_freq": MAX_FREQ}, args.out)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "final_loss": float(loss)}))


if __name__ == "__main__":
    main()
