"""Flow matching vs. regression as a robot policy, on demonstrations with two modes.

    python examples/robot_policy.py                 # about 2 minutes on one CPU core
    python examples/robot_policy.py --steps 1000    # a quicker, rougher run

A point robot must pass a round obstacle to reach its goal. Every demonstrated situation is
shown going around it on both sides, so the action chunk given the observation has two equal
modes. Both policies learn from the same (observation, 10-action chunk) pairs:

* flow matching: v(x_t, t, o) with the observation o as condition, trained by
  ``flowmatch.train`` on the built-in data set ``point-robot``; acting samples a chunk by
  solving the ODE from noise, which lands in one mode;
* regression: an MLP o -> chunk trained by least squares, whose optimum E[chunk | o] is the
  average of the two detours, i.e. straight into the obstacle.

Both are rolled out in closed loop on the same seeded episodes (each executes its whole chunk,
then observes and plans again). The script prints success and collision rates and writes
``rollouts.png`` with one panel per policy. One Euler step of the flow is shown too: from
x_0 its velocity is E[x_1 | o] - x_0, so it lands on the regression answer.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

import flowmatch
from flowmatch.data import get_dataset
from flowmatch.envs import FlowPolicy, PointRobot, fit_regression_policy
from flowmatch.viz import plot_rollouts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/robot-policy"), help="output folder")
    p.add_argument("--steps", type=int, default=3000, help="training steps of each policy")
    p.add_argument("--episodes", type=int, default=100, help="seeded evaluation episodes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)  # small networks: one thread is fastest on a CPU
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.out / "flow-policy"
    if run.exists():
        shutil.rmtree(run)

    env = PointRobot()
    data = get_dataset("point-robot")
    print(f"{data.train_data.shape[0]} demonstration pairs: observation (4,) -> chunk (20,)")

    start = time.perf_counter()
    cfg = flowmatch.TrainConfig(
        data="point-robot",
        steps=args.steps,
        batch_size=256,
        model=flowmatch.ModelConfig(width=256, depth=3),
        seed=args.seed,
        log_every=max(1, args.steps // 10),
        checkpoint_every=args.steps,
    )
    flowmatch.train(cfg, run)
    flow = flowmatch.load(run)
    print(f"flow-matching policy trained in {time.perf_counter() - start:.0f}s")

    start = time.perf_counter()
    regression = fit_regression_policy(
        data.train_cond, data.train_data, width=256, depth=3, steps=args.steps, seed=args.seed
    )
    print(f"regression policy trained in {time.perf_counter() - start:.0f}s")

    seeds = list(range(10_000, 10_000 + args.episodes))
    policies = {
        "flow matching (midpoint, NFE 10)": FlowPolicy(flow, solver="midpoint", steps=5),
        "regression (MSE)": regression,
        "flow matching, 1 Euler step": FlowPolicy(flow, solver="euler", steps=1),
    }
    rollouts = {name: env.rollout(policy, seeds) for name, policy in policies.items()}
    print(f"\n{args.episodes} episodes{'':<26}success  collision")
    for name, r in rollouts.items():
        print(f"{name:<37}{r.success_rate:>7.2f}{r.collision_rate:>11.2f}")
    figure = plot_rollouts(rollouts, env, args.out / "rollouts.png", max_paths=50)
    print(f"\nrollouts: {figure}")


if __name__ == "__main__":
    main()
