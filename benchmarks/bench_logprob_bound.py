"""How far ahead of flow_matching exact log p can get at equal accuracy: a bound, measured.

``bench_logprob_peers.py`` finds both libraries' cheapest setting that meets the bar (mean
|error| <= 0.01 nats against a float64 reference). In 2-D both land on the same solver at the
same NFE, so the ratio of their CPU times is the ratio of the cost of one evaluation. This
script bounds what any of the levers left can add, on the same fields and points:

1. One evaluation (velocity and exact divergence), CPU time in units of a forward pass,
   timed interleaved (every method once per round, median of the rounds), one thread:
     loop        flowmatch's evaluation path (``exact_divergence_loop``)
     tangents    the D forward-mode tangents stacked, one matrix product per layer, no
                 autograd (``bench_divergence_cost.tangents``)
     peer-loop   D autograd calls with ``create_graph=True``, flow_matching 1.0.10's way
                 (``bench_divergence_cost.peer_loop``)
   The per-evaluation bound is peer-loop / min(loop, tangents).
2. Steps: the per-point errors of the augmented rk38 solve (the cheapest passing setting of
   both libraries on these fields) at N = 1 .. N_max uniform steps, then
     uniform     the fewest steps of one grid for every point that meets the bar;
     per point   the fewest mean steps when each point may take its own N, chosen knowing
                 every point's error at every N (an oracle: no step-size controller can do
                 better, and none can know the errors), by minimizing mean N + lambda mean
                 error over each point's choices and the smallest lambda that meets the bar;
     settled     the same oracle with each point's error at N taken as its largest at any
                 N' >= N: a controller that refines until a point's error is small cannot
                 stop on a lucky N where the error of a field rough in t cancels by chance.
   The step bound is uniform / per point (settled: uniform / settled).
3. The bound on the speed-up at equal accuracy: the product of the two. It is generous:
   the oracle sees the reference, and the fastest evaluation is credited with no overhead
   for stepping points separately.

Fields and points are those of ``bench_logprob_peers.py`` (trained there and cached under
``bench-out/logprob-peers/`` if missing, with the float64 reference); ``moons-t30`` is moons
with the time embedding's max frequency 30, the library's default since these fields were set.

Usage:
    python benchmarks/bench_logprob_bound.py --fields moons,moons-t30,checkerboard --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

from flowmatch.likelihood import exact_divergence_loop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_divergence_cost as cost
import bench_logprob_peers as peers

BAR = peers.BAR


def evaluation_costs(model, z: Tensor, rounds: int, calls: int) -> dict[str, float]:
    """CPU ms of one evaluation by method, interleaved rounds, median; 'forward' is v alone."""
    t = torch.tensor(0.37)

    def f(y: Tensor) -> Tensor:
        return model(y, t)

    methods = {
        "forward": lambda: f(z),
        "loop": lambda: exact_divergence_loop(f, z),
        "tangents": lambda: cost.tangents(model, z, t),
        "peer-loop": lambda: cost.peer_loop(f, z),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    with torch.no_grad():
        for fn in methods.values():  # warm-up
            fn()
        for _ in range(rounds):
            for name, fn in methods.items():
                start = time.process_time()
                for _ in range(calls):
                    fn()
                times[name].append((time.process_time() - start) / calls * 1000)
    return {name: statistics.median(ms) for name, ms in times.items()}


def step_errors(flow, x: Tensor, ref: Tensor, n_max: int) -> Tensor:
    """(n_max, B) |error| of the augmented rk38 solve with N = 1 .. n_max uniform steps."""
    rows = []
    for n in range(1, n_max + 1):
        r = flow.log_prob_with_stats(x, solver="rk38", steps=n, divergence="exact")
        rows.append((r.log_prob.double() - ref).abs())
    return torch.stack(rows)


def oracle_steps(errors: Tensor, bar: float = BAR) -> float:
    """The fewest mean steps when every point picks its own N, knowing all errors (see top).

    ``errors`` is (N_max, B) for N = 1 .. N_max. For a multiplier lam each point takes the N
    minimizing N + lam * error; the mean error falls as lam grows, and the smallest lam whose
    mean error meets ``bar`` gives the mean N (bisection on log lam).
    """
    steps = torch.arange(1, errors.shape[0] + 1, dtype=errors.dtype)[:, None]  # (N_max, 1)

    def choose(lam: float) -> tuple[float, float]:
        pick = (steps + lam * errors).argmin(dim=0)  # (B,)
        err = errors.gather(0, pick[None])[0]
        return (pick + 1).double().mean().item(), err.mean().item()

    lo, hi = 1e-3, 1e9
    if choose(hi)[1] > bar:
        return float("inf")
    for _ in range(60):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if choose(mid)[1] > bar else (lo, mid)
    return choose(hi)[0]


def uniform_steps(errors: Tensor, bar: float = BAR) -> int | None:
    """The fewest uniform steps whose mean error meets the bar, or None within N_max."""
    passing = (errors.mean(dim=1) <= bar).nonzero()
    return None if passing.numel() == 0 else int(passing[0, 0]) + 1


def bound_row(field: str, seed: int, n_max: int, rounds: int) -> dict:
    flow, _ = peers.load_field(field, seed=seed)
    n = peers.POINTS[field]
    x = peers.test_points(field, n, 7 + seed)
    ref = peers.load_reference(flow, x, field, seed)["log_p"].double()
    z = flow.standardize(x.reshape(n, *flow.shape)).reshape(n, -1)
    ms = evaluation_costs(flow.velocity, z, rounds, calls=10)
    errors = step_errors(flow, x, ref, n_max)
    settled = errors.flip(0).cummax(dim=0).values.flip(0)  # (N_max, B): max over N' >= N
    uniform, oracle = uniform_steps(errors), oracle_steps(errors)
    oracle_settled = oracle_steps(settled)
    ours = min(ms["loop"], ms["tangents"])
    per_eval = ms["peer-loop"] / ours
    per_steps = uniform / oracle if uniform else float("nan")
    return {
        "field": field, "seed": seed,
        "loop": ms["loop"] / ms["forward"], "tangents": ms["tangents"] / ms["forward"],
        "peer": ms["peer-loop"] / ms["forward"], "per_eval": per_eval,
        "uniform": uniform, "oracle": oracle, "per_steps": per_steps,
        "bound": per_eval * per_steps, "settled": oracle_settled,
        "bound_settled": per_eval * (uniform / oracle_settled if uniform else float("nan")),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", default="moons,moons-t30,checkerboard")
    p.add_argument("--seeds", default="0,1,2", help="training seeds of the fields")
    p.add_argument("--max-steps", type=int, default=32, help="N_max of the rk38 grids")
    p.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    args = p.parse_args()
    torch.set_num_threads(1)
    peers.CACHE.mkdir(parents=True, exist_ok=True)
    print("| field | seed | one evaluation, in forward passes: loop / tangents / flow_matching's "
          "way | per-evaluation bound | rk38 steps: one grid / per point / per point, settled "
          "| bound on the speed-up (settled) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for field in args.fields.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            r = bound_row(field, seed, args.max_steps, args.rounds)
            uniform = "none" if r["uniform"] is None else str(r["uniform"])
            print(f"| {field} | {seed} | {r['loop']:.2f} / {r['tangents']:.2f} / {r['peer']:.2f} "
                  f"| {r['per_eval']:.2f}x | {uniform} / {r['oracle']:.2f} / {r['settled']:.2f} "
                  f"| {r['bound']:.2f}x ({r['bound_settled']:.2f}x) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
