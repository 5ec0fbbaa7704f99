"""Conditional generation: class-conditional images with guidance, and a robot policy.

Sections (pick with --only):
  digits   U-Net on scikit-learn's 8x8 digits; over guidance scales w and solver settings, the
           reference classifier's accuracy on the samples (intended class) and the Fréchet
           distance to the held-out split in its features, beside the same numbers for real
           images (see flowmatch.evaluation.images: held-out images when the held-out split
           holds 2n of them, and training images, which are not a floor).
  fashion  the same on Fashion-MNIST 28x28, with a training budget set by --fashion-steps
           (and --fashion-channels, --fashion-batch).
  robot    flow-matching policy vs. least-squares regression on the bimodal point-robot
           demonstrations: success and collision rates over seeded closed-loop episodes,
           for several solver settings of the flow policy.

Usage:
    python benchmarks/bench_conditional.py --only digits robot
    python benchmarks/bench_conditional.py --only fashion --fashion-steps 2000

Run folders and a JSON of every table go to --out (default bench-out/conditional).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import torch

import flowmatch
from flowmatch.data import get_dataset
from flowmatch.envs import FlowPolicy, PointRobot, fit_regression_policy
from flowmatch.evaluation.classifier import reference_classifier
from flowmatch.evaluation.images import (
    ImageQuality,
    evaluate_class_conditional,
    real_data_quality,
)

IMAGE_SETTINGS = (("euler", 10), ("midpoint", 5), ("midpoint", 10))
ROBOT_SETTINGS = (("euler", 1), ("euler", 2), ("euler", 4), ("midpoint", 2), ("midpoint", 5))


def train_run(cfg: flowmatch.TrainConfig, run: Path) -> tuple[object, float]:
    if run.exists():
        shutil.rmtree(run)
    start = time.perf_counter()
    result = flowmatch.train(cfg, run)
    seconds = time.perf_counter() - start
    print(f"  trained {result.step} steps in {seconds:.0f}s (loss {result.loss:.4f}): {run}")
    return flowmatch.load(run), seconds


def print_image_table(rows: list[ImageQuality]) -> None:
    print(f"  {'setting':<28}{'NFE':>5}{'accuracy':>10}{'Fréchet':>10}{'n':>7}{'sample s':>10}")
    for r in rows:
        fd = "-" if math.isnan(r.frechet) else f"{r.frechet:.3f}"
        nfe = "-" if r.nfe == 0 else str(r.nfe)
        print(f"  {r.label:<28}{nfe:>5}{r.accuracy:>10.3f}{fd:>10}{r.n:>7}{r.seconds:>10.1f}")


def image_section(name: str, cfg: flowmatch.TrainConfig, args, guidance, settings) -> dict:
    print(f"\n== {name}: {cfg.model.name} channels {cfg.model.channels}, {cfg.steps} steps, "
          f"batch {cfg.batch_size}, condition dropout {cfg.cond_drop}")  # fmt: skip
    dataset = get_dataset(cfg.data)
    start = time.perf_counter()
    net = reference_classifier(dataset, device=args.device)
    print(f"  reference classifier ready in {time.perf_counter() - start:.0f}s (cached after)")
    flow, seconds = train_run(cfg, args.out / name)
    rows = list(real_data_quality(dataset, net, args.n, seed=1))
    rows += evaluate_class_conditional(
        flow, dataset, net, guidance_scales=guidance, settings=settings, n=args.n
    )
    print_image_table(rows)
    best = max(rows[2:], key=lambda r: r.accuracy)
    ref = rows[1] if not math.isnan(rows[1].frechet) else rows[0]
    print(f"  best accuracy {best.accuracy:.3f} at {best.label} (Fréchet {best.frechet:.3f}; "
          f"{ref.label} {ref.frechet:.3f})")  # fmt: skip
    return {
        "config": cfg.to_dict(),
        "train_seconds": seconds,
        "rows": [dataclasses.asdict(r) for r in rows],
    }


def robot_section(args) -> dict:
    print(f"\n== robot: flow matching vs. regression, {args.episodes} seeded episodes")
    env = PointRobot()
    data = get_dataset("point-robot")
    cfg = flowmatch.TrainConfig(
        data="point-robot",
        steps=args.robot_steps,
        batch_size=256,
        model=flowmatch.ModelConfig(width=256, depth=3),
        threads=args.threads,
        log_every=500,
        checkpoint_every=args.robot_steps,
    )
    flow, fm_seconds = train_run(cfg, args.out / "robot")
    start = time.perf_counter()
    regression = fit_regression_policy(
        data.train_cond, data.train_data, width=256, depth=3, steps=args.robot_steps
    )
    print(f"  regression trained in {time.perf_counter() - start:.0f}s")
    seeds = list(range(10_000, 10_000 + args.episodes))
    policies = {f"flow matching {s} x{k}": FlowPolicy(flow, solver=s, steps=k)
                for s, k in ROBOT_SETTINGS}  # fmt: skip
    policies["regression (MSE)"] = regression
    rows = []
    print(f"  {'policy':<28}{'NFE':>5}{'success':>9}{'collision':>11}{'timeout':>9}")
    for name, policy in policies.items():
        r = env.rollout(policy, seeds)
        nfe = "-"
        if isinstance(policy, FlowPolicy):
            nfe = str(policy.steps * (2 if policy.solver == "midpoint" else 1))
        timeout = float((~r.success & ~r.collision).float().mean())
        print(f"  {name:<28}{nfe:>5}{r.success_rate:>9.3f}{r.collision_rate:>11.3f}"
              f"{timeout:>9.3f}")  # fmt: skip
        rows.append({"policy": name, "nfe": nfe, "success": r.success_rate,
                     "collision": r.collision_rate})  # fmt: skip
    return {"train_seconds": fm_seconds, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=["digits", "robot"],
                   choices=["digits", "fashion", "robot"])  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("bench-out/conditional"))
    p.add_argument("--n", type=int, default=1000, help="generated images per setting")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--digits-steps", type=int, default=2000)
    p.add_argument("--digits-channels", type=int, default=16)
    p.add_argument("--fashion-steps", type=int, default=2000)
    p.add_argument("--fashion-channels", type=int, default=16)
    p.add_argument("--fashion-batch", type=int, default=64)
    p.add_argument("--robot-steps", type=int, default=3000)
    p.add_argument("--episodes", type=int, default=200)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    guidance = (0.0, None, 1.5, 2.0, 3.0)  # None: plain conditional (w = 1)
    results = {}
    if "digits" in args.only:
        cfg = flowmatch.TrainConfig(
            data="digits-images",
            model=flowmatch.ModelConfig(name="unet", channels=args.digits_channels, levels=2),
            steps=args.digits_steps,
            batch_size=128,
            lr=1e-3,
            threads=args.threads,
            device=args.device,
            log_every=200,
            checkpoint_every=1000,
        )
        results["digits"] = image_section("digits", cfg, args, guidance, IMAGE_SETTINGS)
    if "fashion" in args.only:
        cfg = flowmatch.TrainConfig(
            data="fashion-mnist",
            model=flowmatch.ModelConfig(name="unet", channels=args.fashion_channels, levels=2),
            steps=args.fashion_steps,
            batch_size=args.fashion_batch,
            lr=1e-3,
            threads=args.threads,
            device=args.device,
            log_every=100,
            checkpoint_every=500,
        )
        settings = (("midpoint", 5),)
        results["fashion"] = image_section("fashion", cfg, args, (None, 1.5, 2.0, 3.0), settings)
    if "robot" in args.only:
        results["robot"] = robot_section(args)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
