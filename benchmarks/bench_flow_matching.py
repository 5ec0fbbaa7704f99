"""Flow matching on 2-D toy sets: training cost against a hand-written loop, and W2 per solver.

For each dataset this script
  1. measures the CPU time of one training step of flowmatch's loop and of a minimal hand-written
     PyTorch loop doing the same work (same network, AdamW, warm-up/cosine schedule, gradient
     clipping, EMA, data drawn from the same generator), interleaved A B B A in one process;
  2. trains a model with flowmatch's defaults (plus --steps) and reports the wall time;
  3. reports W2 against 2000 fresh draws at Euler NFE 1/2/4/8/100, heun, rk4 and dopri5,
     beside the floor: the W2 between an independent sample of the data distribution and the
     same held-out draws, i.e. what a perfect model scores (``Dataset.iid_sample``; moons,
     circles and rings draw FFJORD's stratified batches, and two of those are closer to each
     other than independent samples are, so their two-draws distance is printed as well).

Usage:
    python benchmarks/bench_flow_matching.py [--steps 20000] [--datasets moons ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from flowmatch import ModelConfig, TrainConfig, load, train
from flowmatch.data import get_dataset
from flowmatch.errors import check_device
from flowmatch.evaluation.samples import EvalRow, SolverSetting, evaluate_flow
from flowmatch.metrics import wasserstein2
from flowmatch.models import MLPVelocity
from flowmatch.training.build import build_state, data_statistics
from flowmatch.training.loop import Trainer
from flowmatch.training.schedules import lr_factor

SETTINGS = (
    SolverSetting("euler", 1),
    SolverSetting("euler", 2),
    SolverSetting("euler", 4),
    SolverSetting("euler", 8),
    SolverSetting("euler", 100),
    SolverSetting("heun", 4),
    SolverSetting("rk4", 5),
    SolverSetting("dopri5"),
)


class HandLoop:
    """The same training step written directly in PyTorch, with no framework around it."""

    def __init__(self, cfg: TrainConfig, dataset, mean, std):
        torch.manual_seed(cfg.seed)
        m = cfg.model
        self.net = MLPVelocity(
            2, m.width, m.depth, m.activation, m.time_embed_dim, time_max_freq=m.time_max_freq
        )
        self.ema = [p.detach().clone() for p in self.net.parameters()]
        self.params = list(self.net.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.cfg, self.dataset, self.mean, self.std = cfg, dataset, mean, std
        self.g = torch.Generator().manual_seed(cfg.seed)
        self.step = 0

    def run(self, n: int) -> None:
        cfg, g = self.cfg, self.g
        for _ in range(n):
            lr = cfg.lr * lr_factor(
                self.step, cfg.steps, cfg.warmup_steps, cfg.lr_decay, cfg.min_lr_ratio
            )
            for group in self.opt.param_groups:
                group["lr"] = lr
            x1 = (self.dataset.sample(cfg.batch_size, g) - self.mean) / self.std
            x0 = torch.randn(x1.shape, generator=g)
            t = torch.rand(cfg.batch_size, generator=g)
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            loss = (self.net(xt, t) - (x1 - x0)).square().mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip, foreach=True)
            self.opt.step()
            self.step += 1
            d = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                torch._foreach_lerp_(self.ema, self.params, 1 - d)


def step_times(cfg: TrainConfig, workdir: Path, chunk: int, rounds: int) -> tuple[float, float]:
    """Median CPU seconds per step of flowmatch's loop and of the hand loop, interleaved.

    Both run on one thread, so the process's CPU time is the step's compute; unlike wall
    time it does not count the time other jobs on the machine take the core away.
    """
    dataset = get_dataset(cfg.data)
    mean, std = data_statistics(dataset)
    record = {"data": {"shape": [2], "mean": mean.tolist(), "std": std.tolist()}}
    workdir.mkdir(parents=True, exist_ok=True)
    ours = Trainer(cfg, workdir, build_state(cfg, record, check_device("cpu")))
    hand = HandLoop(cfg, dataset, mean, std)
    ours.run(stop_after=chunk)  # warm up both
    hand.run(chunk)
    a, b = [], []
    for i in range(rounds):  # A B, then B A: neither always runs first
        order = [("ours", lambda: ours.run(stop_after=chunk)), ("hand", lambda: hand.run(chunk))]
        for name, step in order if i % 2 == 0 else order[::-1]:
            t0 = time.process_time()
            step()
            (a if name == "ours" else b).append((time.process_time() - t0) / chunk)
    return statistics.median(a), statistics.median(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["8gaussians", "moons", "checkerboard"])
    parser.add_argument("--steps", type=int, default=20000, help="training steps per dataset")
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5, help="evaluation seeds to average")
    parser.add_argument("--timing-chunk", type=int, default=300)
    parser.add_argument("--timing-rounds", type=int, default=10)
    parser.add_argument(
        "--timing-only", action="store_true", help="measure the step times, skip training"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            # the settings of the documented table: uniform t, as the hand loop draws, and the
            # time embedding's cap of 1000 (the defaults before docs/benchmarks.md, "Defaults")
            cfg = TrainConfig(
                data=name,
                steps=args.steps,
                checkpoint_every=args.steps,
                time_sampling="uniform",
                model=ModelConfig(time_max_freq=1000.0),
            )
            ours, hand = step_times(
                cfg, Path(tmp) / f"timing-{name}", args.timing_chunk, args.timing_rounds
            )
            if args.timing_only:
                print(f"| {name} | {ours * 1e3:.2f} ms | {hand * 1e3:.2f} ms | "
                      f"{(ours / hand - 1) * 100:+.1f}% |", flush=True)  # fmt: skip
                continue
            t0 = time.perf_counter()
            train(cfg, Path(tmp) / name)
            train_s = time.perf_counter() - t0
            flow = load(Path(tmp) / name)
            dataset = get_dataset(name)
            # W2 of 2000 points moves by up to ~30% with the noise seed (a few stray points
            # weigh a lot in a squared cost), so average over seeds, the floor alike.
            floors, draws, runs = [], [], []
            for seed in range(args.seeds):
                ref = dataset.held_out(args.n_test, torch.Generator().manual_seed(100 + seed))
                other = dataset.iid_sample(args.n_test, torch.Generator().manual_seed(200 + seed))
                floors.append(wasserstein2(other, ref))
                other = dataset.held_out(args.n_test, torch.Generator().manual_seed(200 + seed))
                draws.append(wasserstein2(other, ref))
                runs.append(evaluate_flow(flow, ref, settings=SETTINGS, seed=300 + seed))
            floor = (statistics.mean(floors), statistics.mean(draws))
            evals = [
                EvalRow(
                    r[0].solver,
                    r[0].steps,
                    r[0].nfe,
                    statistics.mean(e.w2 for e in r),
                    statistics.mean(e.mmd for e in r),
                    statistics.mean(e.seconds for e in r),
                )
                for r in zip(*runs, strict=True)
            ]
            rows.append((name, train_s, ours, hand, floor, evals))
            print(f"[{name}] trained {args.steps} steps in {train_s:.0f}s", flush=True)

    if args.timing_only:
        return
    head = ["dataset", "train s", "step ms", "hand ms", "overhead", "floor", "two draws"]
    head += [f"{e.solver}{'' if e.steps is None else '/' + str(e.steps)}" for e in rows[0][5]]
    head.append("euler/100 / floor")
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, train_s, ours, hand, floor, evals in rows:
        cells = [name, f"{train_s:.0f}", f"{ours * 1e3:.2f}", f"{hand * 1e3:.2f}"]
        cells += [f"{(ours / hand - 1) * 100:+.1f}%", f"{floor[0]:.3f}", f"{floor[1]:.3f}"]
        cells += [f"{e.w2:.3f}" + (f" (NFE {e.nfe})" if e.steps is None else "") for e in evals]
        euler100 = next(e.w2 for e in evals if e.solver == "euler" and e.steps == 100)
        cells.append(f"{euler100 / floor[0]:.2f}x")
        print("| " + " | ".join(cells) + " |")
    print(
        f"\nW2 (mean of {args.seeds} seeds, {args.n_test} points) by solver/steps; "
        "NFE = steps x stages (heun 2, rk4 4); dopri5 at atol = rtol = 1e-5."
    )


if __name__ == "__main__":
    main()
