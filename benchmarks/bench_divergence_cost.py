"""The cost of one exact (velocity, divergence) evaluation, by method, on the likelihood fields.

Exact log p pays for div v = tr(dv/dx) at every evaluation; this script times the ways of
computing it on the trained fields of ``bench_logprob_peers.py`` (loaded from its cache,
trained there if missing), one thread, CPU time (``time.process_time``) per call, median of
``--repeats`` blocks, in milliseconds and in units of one forward pass:

    forward        v alone (the unit)
    loop           flowmatch's evaluation path: one recorded forward pass and D backward
                   passes that record nothing (``exact_divergence_loop``)
    func-reverse   ``torch.func``: vjp under vmap over the D basis vectors (the training path)
    jacrev, jacfwd ``torch.func.jacrev`` / ``jacfwd`` of the per-sample field under vmap,
                   returning v as the auxiliary output: velocity and Jacobian from one pass
    peer-loop      D calls of ``torch.autograd.grad`` with ``create_graph=True``, the way
                   flow_matching 1.0.10 computes its exact divergence (re-written here)
    tangents       forward-mode by hand for the MLP: the D tangent vectors stacked under the
                   activations, each linear layer one matrix product of (1 + D) B rows; the last
                   layer only its diagonal (velocity and divergence in one pass, no autograd)

Usage:
    python benchmarks/bench_divergence_cost.py --fields moons,checkerboard,digits
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import jacfwd, jacrev, vmap

from flowmatch.likelihood import exact_divergence, exact_divergence_loop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_logprob_peers as peers


def _silu_and_slope(a: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(a)
    return a * s, s * (1 + a * (1 - s))


def tangents(model, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """v (B, D) and div (B,) of a silu MLPVelocity by forward-mode tangents, no autograd."""
    b, d = x.shape
    if not isinstance(model.net[1], nn.SiLU) or model.condition is not None:
        raise SystemExit("tangents: written for an unconditional silu MLP")
    lin = [m for m in model.net if isinstance(m, nn.Linear)]
    w1 = lin[0].weight  # (H, F)
    emb = model.time_embed(t.reshape(1).to(x.dtype))[0]  # (E,): the same for every row
    bias = lin[0].bias + emb @ w1[:, -model.time_embed.dim :].T
    if model.input_embed is None:
        a = torch.addmm(bias, x, w1[:, :d].T)  # (B, H)
        da = w1[:, :d].T[:, None, :].expand(d, b, -1)  # (D, B, H): d a / d x_i
    else:  # [x, sin(x F), cos(x F)]: d/dx_i = [e_i, cos(x F) F_i, -sin(x F) F_i]
        freqs = model.input_embed.freqs  # (D, m)
        m = freqs.shape[1]
        u = x @ freqs  # (B, m)
        su, cu = u.sin(), u.cos()
        a = torch.addmm(bias, torch.cat([x, su, cu], 1), w1[:, : d + 2 * m].T)
        ws, wc = w1[:, d : d + m], w1[:, d + m : d + 2 * m]
        da = torch.stack(
            [w1[:, i] + (cu * freqs[i]) @ ws.T - (su * freqs[i]) @ wc.T for i in range(d)]
        )
    h, slope = _silu_and_slope(a)
    z = torch.cat([h[None], slope[None] * da])  # (1 + D, B, H): value, then tangents
    for layer in lin[1:-1]:
        z = (z.reshape(-1, z.shape[-1]) @ layer.weight.T).reshape(d + 1, b, -1)
        h, slope = _silu_and_slope(z[0] + layer.bias)
        z = torch.cat([h[None], slope[None] * z[1:]])
    last = lin[-1]
    v = torch.addmm(last.bias, z[0], last.weight.T)  # (B, D)
    return v, torch.einsum("ibh,ih->b", z[1:], last.weight)  # only the diagonal of J


def peer_loop(f: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """D autograd calls that record the derivatives' graph (create_graph=True)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_()
        v = f(x)
        div = torch.zeros(x.shape[0])
        for i in range(x.shape[1]):
            div = div + torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i]
    return v.detach(), div.detach()


def per_sample(kind, model, t: Tensor) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    one = lambda y: (lambda o: (o, o))(model(y[None], t)[0])  # noqa: E731  # (D,) -> J, v
    jac = vmap(kind(one, has_aux=True))

    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        j, v = jac(x)  # (B, D, D), (B, D)
        return v, j.diagonal(dim1=1, dim2=2).sum(-1)

    return run


def timed(fn: Callable[[], object], repeats: int, calls: int) -> float:
    """Median over ``repeats`` blocks of the CPU milliseconds of one call."""
    fn()  # warm-up
    blocks = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            fn()
        blocks.append((time.process_time() - start) / calls * 1000)
    return statistics.median(blocks)


def measure(field: str, seed: int, repeats: int) -> None:
    """Print one table row per method for one field."""
    flow, _ = peers.load_field(field, seed=seed)
    model, n = flow.velocity, peers.POINTS[field]
    x = torch.randn(n, flow.dim, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(0.37)

    def f(y: Tensor) -> Tensor:
        return model(y, t)

    by_jacrev, by_jacfwd = per_sample(jacrev, model, t), per_sample(jacfwd, model, t)
    methods = {
        "forward": lambda: f(x),
        "loop": lambda: exact_divergence_loop(f, x),
        "func-reverse": lambda: exact_divergence(f, x),
        "jacrev": lambda: by_jacrev(x),
        "jacfwd": lambda: by_jacfwd(x),
        "peer-loop": lambda: peer_loop(f, x),
        "tangents": lambda: tangents(model, x, t),
    }
    with torch.no_grad():
        reference = exact_divergence_loop(f, x)[1]
        for name in ("func-reverse", "jacrev", "jacfwd", "peer-loop", "tangents"):
            err = (methods[name]()[1] - reference).abs().max().item()
            assert err < 1e-3 * max(1.0, reference.abs().max().item()), (name, err)
        calls = max(1, 200 // flow.dim)
        unit = timed(methods["forward"], repeats, 20)
        for name, fn in methods.items():
            ms = unit if name == "forward" else timed(fn, repeats, calls)
            print(f"| {field} | {n} | {name} | {ms:.2f} | {ms / unit:.1f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", default="moons,checkerboard,digits")
    p.add_argument("--seed", type=int, default=0, help="training seed of the fields")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    peers.CACHE.mkdir(parents=True, exist_ok=True)
    print("| field | points | method | ms per evaluation | forward passes |")
    print("|---|---|---|---|---|")
    for field in args.fields.split(","):
        measure(field, args.seed, args.repeats)


if __name__ == "__main__":
    main()
