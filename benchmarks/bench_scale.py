"""Scale-out: samples/s of one process against two (torchrun, gloo), and fp32 / bf16 / compile.

Every number is a real ``flowmatch train`` run (``--nproc 2`` for two processes) of the same
model with the same batch per process, read from the run's metrics: the median steps/s of
the logged intervals after the first (which holds start-up and, with ``--compile``, the
compilation), times the global batch. Runs of the compared settings alternate, and each is
repeated ``--repeats`` times; the table gives the best repeat of each.

Models:
  mlp   2-D moons, the default MLP (width 256, depth 3), 256 rows per process
  mlp-2048  the same with 2048 rows per process (the same gradient exchange, 8x the work)
  unet  Fashion-MNIST 28x28, class-conditional U-Net (16 channels, 2 levels), 64 rows per
        process (needs the dataset-fashion-mnist package)

Usage:
    python benchmarks/bench_scale.py [--models mlp unet] [--repeats 2] [--device cpu]
        [--skip-processes] [--skip-precision]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Model:
    args: tuple[str, ...]
    batch: int  # rows per process
    steps: int
    log_every: int


MODELS = {
    "mlp": Model(("--data", "moons"), 256, 600, 100),
    "mlp-2048": Model(("--data", "moons"), 2048, 150, 25),
    "unet": Model(
        ("--data", "fashion-mnist", "--model", "unet", "--channels", "16", "--levels", "2"),
        64,
        60,
        10,
    ),
}


def samples_per_s(
    model: Model, nproc: int, extra: tuple[str, ...], device: str, steps: int | None = None
) -> float:
    """Train once and return the median samples/s of the logged intervals after the first."""
    steps = steps or model.steps
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "flowmatch", "train", "--out", str(out), *model.args]
        cmd += ["--steps", str(steps), "--log-every", str(model.log_every)]
        cmd += ["--checkpoint-every", str(steps), "--batch-size", str(model.batch * nproc)]
        cmd += ["--warmup-steps", "1", "--device", device, *extra]
        if nproc > 1:
            cmd += ["--nproc", str(nproc)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [row["steps_per_s"] for row in rows[1:]] or [rows[-1]["steps_per_s"]]
    return statistics.median(rates) * model.batch * nproc


def best_of(settings: dict[str, tuple], model: Model, device: str, repeats: int) -> dict:
    """Run every setting ``repeats`` times, alternating; the best samples/s of each."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, (nproc, extra, steps) in settings.items():
            rate = samples_per_s(model, nproc, extra, device, steps)
            best[name] = max(best.get(name, 0.0), rate)
            print(f"  {name}: {rate:,.0f} samples/s", file=sys.stderr)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=["mlp", "unet"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-processes", action="store_true")
    p.add_argument("--skip-precision", action="store_true")
    p.add_argument("--precision-steps", type=int, default=0, help="steps of the precision runs")
    args = p.parse_args()
    cores = os.cpu_count()
    if not args.skip_processes:
        print(
            f"\n| processes ({cores} cores) | model | rows/process | samples/s | vs 1 x 1 thread |"
        )
        print("|---|---|--:|--:|--:|")
        for name in args.models:
            model = MODELS[name]
            settings = {
                "1 process, 1 thread": (1, ("--threads", "1"), None),
                "1 process, 2 threads": (1, ("--threads", "2"), None),
                "2 processes, 1 thread each": (2, ("--threads", "1"), None),
            }
            best = best_of(settings, model, args.device, args.repeats)
            base = best["1 process, 1 thread"]
            for setting, rate in best.items():
                print(f"| {setting} | {name} | {model.batch} | {rate:,.0f} | {rate / base:.2f}x |")
    if not args.skip_precision:
        print("\n| precision (1 process, 1 thread) | model | samples/s | vs fp32 |")
        print("|---|---|--:|--:|")
        for name in args.models:
            model = MODELS[name]
            steps = args.precision_steps or None
            one = ("--threads", "1")
            settings = {
                "fp32": (1, one, steps),
                "bf16": (1, (*one, "--precision", "bf16"), steps),
                "fp32 + compile": (1, (*one, "--compile"), steps),
            }
            best = best_of(settings, model, args.device, args.repeats)
            for setting, rate in best.items():
                print(f"| {setting} | {name} | {rate:,.0f} | {rate / best['fp32']:.2f}x |")


if __name__ == "__main__":
    main()
