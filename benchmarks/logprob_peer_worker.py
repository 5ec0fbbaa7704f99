"""Exact log p by facebookresearch/flow_matching on a flowmatch field; run in the peer venv.

Executed by ``bench_logprob_peers.py`` with the isolated environment's Python, which has
flow_matching 1.0.10 but not flowmatch. It imports nothing from flowmatch: the driver exports
the trained MLP's tensors (time frequencies, Fourier features, linear layers), and ``Field``
below evaluates the same formula as ``flowmatch.models.MLPVelocity``, so both libraries
integrate one field (the driver checks the two agree on a probe batch). The log-densities
come from flow_matching's own ``ODESolver.compute_likelihood(exact_divergence=True)``, in the
standardized units the field works in, with its N(0, I) source.

Usage (by the driver):
    logprob_peer_worker.py JOB.pt OUT.pt

JOB.pt holds ``field`` (the tensors), ``z1`` (N, D) standardized points, ``probe`` points for
the agreement check, ``dtype`` and ``settings``: a list of dicts with ``method`` and either
``steps`` (fixed-grid: step size 1 / steps) or ``tol`` (adaptive: atol = rtol = tol). OUT.pt
holds, per setting, log p (N,), the NFE, and the CPU and wall seconds of the call alone (after
an untimed warm-up call on four points).
"""

from __future__ import annotations

import math
import sys
import time

import torch
from torch import Tensor, nn
from torch.nn import functional as F

ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu, "tanh": torch.tanh}
ACTIVATIONS["softplus"] = F.softplus


class Field(nn.Module):
    """v(x, t) = MLP([x, sin(x B), cos(x B), sin(w t), cos(w t)]), as flowmatch's MLPVelocity."""

    def __init__(self, tensors: dict) -> None:
        super().__init__()
        self.register_buffer("time_freqs", tensors["time_freqs"])
        self.input_freqs = tensors.get("input_freqs")
        self.layers = nn.ModuleList()
        for weight, bias in tensors["linears"]:
            layer = nn.Linear(weight.shape[1], weight.shape[0])
            layer.weight.data.copy_(weight)
            layer.bias.data.copy_(bias)
            self.layers.append(layer)
        self.act = ACTIVATIONS[tensors["activation"]]

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = t.reshape(-1).expand(x.shape[0]).to(x.dtype)
        angles = t[:, None] * self.time_freqs  # (B, E / 2)
        parts = [x]
        if self.input_freqs is not None:
            xb = x @ self.input_freqs  # (B, m)
            parts += [xb.sin(), xb.cos()]
        h = torch.cat([*parts, angles.sin(), angles.cos()], dim=1)
        for layer in self.layers[:-1]:
            h = self.act(layer(h))
        return self.layers[-1](h)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    return -0.5 * (z.square().sum(dim=1) + z.shape[1] * math.log(2 * math.pi))


def main() -> None:
    from flow_matching.solver import ODESolver

    job = torch.load(sys.argv[1], weights_only=False)
    torch.set_num_threads(1)
    dtype = getattr(torch, job["dtype"])
    field = Field(job["field"]).to(dtype)
    if field.input_freqs is not None:
        field.input_freqs = field.input_freqs.to(dtype)
    calls = [0]

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        calls[0] += 1
        return field(x, t)

    solver = ODESolver(velocity_model=velocity)
    z1 = job["z1"].to(dtype)
    with torch.no_grad():
        probe = field(job["probe"].to(dtype), torch.tensor(0.37, dtype=dtype))
    results = []
    for s in job["settings"]:
        calls[0] = 0
        if "steps" in s:
            options = {"step_size": 1.0 / s["steps"]}
        else:
            options = {"step_size": None, "atol": s["tol"], "rtol": s["tol"]}
        grid = torch.tensor([1.0, 0.0], dtype=dtype)
        # warm-up on a few points, untimed: a fresh process pays one-time costs on its first call
        solver.compute_likelihood(
            x_1=z1[:4], log_p0=standard_normal_log_prob, method=s["method"], time_grid=grid,
            exact_divergence=True, **options,
        )  # fmt: skip
        calls[0] = 0
        cpu, wall = time.process_time(), time.perf_counter()
        _, log_p = solver.compute_likelihood(
            x_1=z1,
            log_p0=standard_normal_log_prob,
            method=s["method"],
            time_grid=grid,
            exact_divergence=True,
            **options,
        )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        results.append({"log_p": log_p.detach(), "nfe": calls[0], "cpu": cpu, "wall": wall})
    torch.save({"results": results, "probe_v": probe}, sys.argv[2])


if __name__ == "__main__":
    main()
