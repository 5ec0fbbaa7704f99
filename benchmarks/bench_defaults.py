"""The measurements behind the training and sampling defaults, on the built-in 2-D sets.

Each candidate is a set of config values (a few fields changed from the current defaults).
Every candidate is trained on every chosen data set and seed, at the budget ``flowmatch
demo`` had when they were measured (4000 steps; benchmarks/bench_demo.py chose its recipe
since), one thread per run, and scored against fresh held-out draws:

- W2 at 100 NFE (Euler, 100 steps) and at few NFE (Euler 4 steps, heun 4 steps = 8 NFE),
  each as a ratio to the data floor (the W2 of an independent sample of real data against the
  same held-out points, what a perfect model scores);
- the NFE of dopri5 at atol = rtol = 1e-5 (a field that varies fast in t costs more);
- the training cost in CPU seconds (``time.process_time`` of the training process, which
  does not count time other jobs take the core away, unlike wall time);
- with ``--solvers``, W2 and NFE of the sampling solvers a user can pick, for ``flowmatch
  sample``'s default.

Defaults are chosen on one group of data sets and seeds (``--sets``/``--seeds``) and then
reported on another that played no part in choosing (run the script again with other
``--sets`` and ``--seeds``); docs/benchmarks.md says which was which.

Usage:
    python benchmarks/bench_defaults.py --sets moons 8gaussians checkerboard --seeds 0
    python benchmarks/bench_defaults.py --sets pinwheel swissroll --seeds 1 2 \\
        --candidates old new --solvers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from flowmatch import ModelConfig, TrainConfig, load, train
from flowmatch.data import TOY_DATASETS, get_dataset
from flowmatch.evaluation.samples import SolverSetting, evaluate_flow
from flowmatch.metrics import wasserstein2

OLD = {
    "time_max_freq": 1000.0,
    "time_sampling": "uniform",
    "width": 256,
    "input_features": 0,
}
"""The defaults before these measurements (the values a run saved without them keeps)."""

CANDIDATES: dict[str, dict[str, Any]] = {
    "old": OLD,
    "freq100": OLD | {"time_max_freq": 100.0},
    "freq30": OLD | {"time_max_freq": 30.0},
    "freq10": OLD | {"time_max_freq": 10.0},
    "freq30-logitnormal": OLD | {"time_max_freq": 30.0, "time_sampling": "logit-normal"},
    "freq30-width128": OLD | {"time_max_freq": 30.0, "width": 128},
    "freq30-width512": OLD | {"time_max_freq": 30.0, "width": 512},
    "freq30-ff16": OLD | {"time_max_freq": 30.0, "input_features": 16, "input_scale": 1.0},
    "freq30-ff64s3": OLD | {"time_max_freq": 30.0, "input_features": 64, "input_scale": 3.0},
    "new": {},  # the library's defaults as they are now
}
"""Config values per candidate; keys are fields of TrainConfig or of its ModelConfig."""

FEW = (SolverSetting("euler", 4), SolverSetting("heun", 4))
MANY = SolverSetting("euler", 100)
DOPRI = SolverSetting("dopri5")
SOLVER_STUDY = (
    SolverSetting("euler", 100),
    SolverSetting("midpoint", 50),
    SolverSetting("heun", 50),
    SolverSetting("rk4", 25),
    SolverSetting("midpoint", 10),
    SolverSetting("midpoint", 5),
    SolverSetting("rk4", 3),
    SolverSetting("heun", 10),
    SolverSetting("rk4", 5),
    SolverSetting("rk4", 10),
    SolverSetting("euler", 4),
    SolverSetting("midpoint", 2),
    SolverSetting("heun", 2),
    SolverSetting("rk4", 1),
)
"""Sampling settings compared for ``flowmatch sample``'s default (with dopri5 at 1e-5)."""


def config(name: str, data: str, seed: int, steps: int) -> TrainConfig:
    """The candidate's config for one data set and seed."""
    values = CANDIDATES[name]
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = ModelConfig(**{k: v for k, v in values.items() if k in model_fields})
    rest = {k: v for k, v in values.items() if k not in model_fields}
    return TrainConfig(
        data=data,
        seed=seed,
        steps=steps,
        checkpoint_every=steps,
        threads=1,
        model=model,
        **rest,
    )


def one_run(job: tuple[str, str, int, int, int, int, bool]) -> dict[str, Any]:
    """Train one candidate on one set and seed, and score it on ``eval_seeds`` draws."""
    name, data, seed, steps, n_test, eval_seeds, solvers = job
    torch.set_num_threads(1)
    cfg = config(name, data, seed, steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.process_time()
        train(cfg, Path(tmp) / "run")
        train_cpu = time.process_time() - t0
        flow = load(Path(tmp) / "run")
    dataset = get_dataset(data)
    settings = (MANY, *FEW, DOPRI) + (SOLVER_STUDY if solvers else ())
    floors, scores = [], {}
    for e in range(eval_seeds):
        # held-out points, the floor's independent draws and the sampling noise each get
        # their own seeds, apart from the training seed
        ref = dataset.held_out(n_test, torch.Generator().manual_seed(1000 + 100 * seed + e))
        other = dataset.iid_sample(n_test, torch.Generator().manual_seed(2000 + 100 * seed + e))
        floors.append(wasserstein2(other, ref))
        rows = evaluate_flow(flow, ref, settings=settings, seed=3000 + e, with_mmd=False)
        for s, r in zip(settings, rows, strict=True):
            key = f"{s.solver}" + ("" if s.solver == "dopri5" else f" {s.steps}")
            scores.setdefault(key, []).append((r.w2, r.nfe, r.seconds))
    return {
        "candidate": name,
        "data": data,
        "seed": seed,
        "train_cpu_s": train_cpu,
        "floor": statistics.mean(floors),
        "w2": {k: statistics.mean(v[0] for v in vs) for k, vs in scores.items()},
        "nfe": {k: statistics.mean(v[1] for v in vs) for k, vs in scores.items()},
        "sample_s": {k: statistics.mean(v[2] for v in vs) for k, vs in scores.items()},
    }


def geomean(xs: list[float]) -> float:
    return math.exp(statistics.mean(math.log(x) for x in xs))


def print_tables(results: list[dict[str, Any]], candidates: list[str], solvers: bool) -> None:
    """Per run, then the geometric mean over runs of each candidate's W2 / floor."""
    cols = ["euler 100", "euler 4", "heun 4"]
    print("\n| candidate | data | seed | floor | " + " | ".join(f"{c} / floor" for c in cols)
          + " | dopri5 NFE | train CPU s |")  # fmt: skip
    print("|---" * (6 + len(cols)) + "|")
    for r in sorted(results, key=lambda r: (candidates.index(r["candidate"]), r["data"])):
        cells = [r["candidate"], r["data"], str(r["seed"]), f"{r['floor']:.3f}"]
        cells += [f"{r['w2'][c] / r['floor']:.2f}" for c in cols]
        cells += [f"{r['nfe']['dopri5']:.0f}", f"{r['train_cpu_s']:.0f}"]
        print("| " + " | ".join(cells) + " |")
    print("\nGeometric mean over each candidate's runs:\n")
    print("| candidate | runs | " + " | ".join(f"{c} / floor" for c in cols)
          + " | dopri5 NFE | train CPU s |")  # fmt: skip
    print("|---" * (4 + len(cols)) + "|")
    for name in candidates:
        rs = [r for r in results if r["candidate"] == name]
        cells = [name, str(len(rs))]
        cells += [f"{geomean([r['w2'][c] / r['floor'] for r in rs]):.3f}" for c in cols]
        cells += [f"{geomean([r['nfe']['dopri5'] for r in rs]):.0f}"]
        cells += [f"{statistics.mean(r['train_cpu_s'] for r in rs):.0f}"]
        print("| " + " | ".join(cells) + " |")
    if not solvers:
        return
    keys = ["dopri5"] + [f"{s.solver} {s.steps}" for s in SOLVER_STUDY]
    keys = [k for k in keys if all(k in r["w2"] for r in results)]
    print("\nSampling solvers (geometric mean of W2 / floor over the runs; NFE; seconds for "
          "the held-out size):\n")  # fmt: skip
    print("| candidate | solver | NFE | W2 / floor | sample s |")
    print("|---|---|---|---|---|")
    for name in candidates:
        rs = [r for r in results if r["candidate"] == name]
        for k in keys:
            cells = [name, k, f"{geomean([r['nfe'][k] for r in rs]):.0f}"]
            cells += [f"{geomean([r['w2'][k] / r['floor'] for r in rs]):.3f}"]
            cells += [f"{statistics.mean(r['sample_s'][k] for r in rs):.2f}"]
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["moons", "8gaussians", "checkerboard"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds")
    parser.add_argument(
        "--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES)
    )
    parser.add_argument("--steps", type=int, default=4000, help="training steps (flowmatch demo's)")
    parser.add_argument("--n-test", type=int, default=2000, help="held-out points per draw")
    parser.add_argument("--eval-seeds", type=int, default=3, help="held-out draws to average")
    parser.add_argument("--solvers", action="store_true", help="also compare sampling solvers")
    parser.add_argument("--workers", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--tables", type=Path, nargs="+", help="print the tables of saved --json files only"
    )
    args = parser.parse_args()
    if args.tables:
        results = [r for path in args.tables for r in json.loads(path.read_text())]
        names = [c for c in CANDIDATES if any(r["candidate"] == c for r in results)]
        print_tables(results, names, all("rk4 5" in r["w2"] for r in results))
        return
    for s in args.sets:
        if s not in TOY_DATASETS:
            parser.error(f"--sets takes built-in 2-D sets {list(TOY_DATASETS)}, got {s!r}")
    jobs = [
        (c, d, seed, args.steps, args.n_test, args.eval_seeds, args.solvers)
        for c in args.candidates
        for d in args.sets
        for seed in args.seeds
    ]
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(one_run, jobs):
            results.append(r)
            print(f"[{r['candidate']} {r['data']} seed {r['seed']}] "
                  f"euler 100 / floor {r['w2']['euler 100'] / r['floor']:.2f}, "
                  f"dopri5 NFE {r['nfe']['dopri5']:.0f}, {r['train_cpu_s']:.0f} CPU s",
                  flush=True)  # fmt: skip
            if args.json is not None:
                args.json.write_text(json.dumps(results, indent=1))
    print_tables(results, args.candidates, args.solvers)


if __name__ == "__main__":
    main()
