"""Fashion-MNIST quality against training time, trained by two processes (``--nproc 2``).

Trains the class-conditional U-Net of docs/benchmarks.md (16 channels, 2 levels, lr 1e-3) on
a global batch of 128 (64 per process) in segments of ``--segment`` steps, copying the run
folder after each, then scores every copy with ``flowmatch eval-images`` (the reference
classifier's Fréchet distance and accuracy; midpoint x5 unless ``--solver``/``--solver-steps``
say otherwise, ``--n`` samples per guidance scale).
Prints one row per copy: steps, wall-clock minutes of training so far (start-up of each
segment included), and the scores per guidance scale, beside the held-out images' own row.

Usage:
    python benchmarks/fashion_scale.py --out DIR [--steps 9000] [--segment 1500] [--n 1000]
        [--guidance 1 1.5 2] [--solver rk4 --solver-steps 25] [--seed 0]
    python benchmarks/fashion_scale.py --out DIR --score-only DIR/step7500 DIR/step9000 \
        --n 500 --guidance 1 1.25 --solver rk4 --solver-steps 25 --seed 1
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    "--data", "fashion-mnist", "--model", "unet", "--channels", "16", "--levels", "2",
    "--batch-size", "128", "--lr", "1e-3", "--checkpoint-every", "500", "--log-every", "100",
]  # fmt: skip


def flowmatch(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "flowmatch", *args], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"flowmatch {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the run and its copies")
    p.add_argument("--steps", type=int, default=9000)
    p.add_argument("--segment", type=int, default=1500)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--solver", default="midpoint", help="fixed-grid solver of the scoring")
    p.add_argument("--solver-steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="noise seed of the scoring")
    p.add_argument(
        "--score-only",
        nargs="+",
        type=Path,
        default=[],
        help="score these saved copies (run folders) instead of training",
    )
    args = p.parse_args()
    setting = (args.solver, args.solver_steps)
    if args.score_only:
        score(
            [(0, float("nan"), c) for c in args.score_only],
            args.guidance,
            args.n,
            setting,
            args.seed,
        )
        return
    run = args.out / "run"
    copies: list[tuple[int, float, Path]] = []
    spent = 0.0
    step = 0
    while step < args.steps:
        start = time.perf_counter()
        if step == 0:
            cmd = ["train", "--out", str(run), "--steps", str(args.steps), *TRAIN]
        else:
            cmd = ["train", "--resume", str(run)]
        flowmatch(*cmd, "--nproc", str(args.nproc), "--stop-after", str(args.segment))
        spent += time.perf_counter() - start
        step = min(step + args.segment, args.steps)
        copy = args.out / f"step{step}"
        shutil.copytree(run, copy, dirs_exist_ok=True)
        copies.append((step, spent / 60, copy))
        print(f"step {step}: {spent / 60:.1f} min", file=sys.stderr, flush=True)
    score(copies, args.guidance, args.n, setting, args.seed)


def score(
    copies: list[tuple[int, float, Path]],
    guidance: list[float],
    n: int,
    setting: tuple[str, int] = ("midpoint", 5),
    seed: int = 0,
) -> None:
    """Print the table: the held-out images' own scores, then one row per copy."""
    import torch

    from flowmatch.data import get_dataset
    from flowmatch.evaluation.classifier import reference_classifier
    from flowmatch.evaluation.images import evaluate_class_conditional, real_data_quality
    from flowmatch.training.runs import load

    torch.set_num_threads(2)
    dataset = get_dataset("fashion-mnist")
    net = reference_classifier(dataset)
    print(f"\n| steps | minutes | {' | '.join(f'w={w} Fréchet | accuracy' for w in guidance)} |")
    print("|--:|--:|" + "--:|--:|" * len(guidance))
    for row in real_data_quality(dataset, net, n, seed=1):
        print(f"| {row.label} | - | {row.frechet:.2f} | {row.accuracy:.3f} |")
    for step, minutes, copy in copies:
        rows = evaluate_class_conditional(
            load(copy), dataset, net, guidance_scales=tuple(guidance),
            settings=(setting,), n=n, seed=seed,
        )  # fmt: skip
        cells = " | ".join(f"{r.frechet:.2f} | {r.accuracy:.3f}" for r in rows)
        print(f"| {step} | {minutes:.1f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
