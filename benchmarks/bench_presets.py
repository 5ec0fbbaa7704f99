"""flowmatch's training presets on the data they were tuned on and on data nobody tuned on.

What it does:
  1. Data sets in two groups, every one with source N(0, I) in the data's own units:
       tuning    N-8gaussians, N-moons: two of ``bench_peers.py``'s tasks (the README's old
                 few-step recipe was chosen on those tasks too); the candidates below are
                 compared here on seed 5, and the preset takes the best one's values.
       held-out  never used to choose anything (docs/presets.md says which were run):
                 flowmatch's checkerboard, sklearn's
                 make_circles and make_moons at other noise levels and scales, the digits
                 (8x8 images as 64-D rows) and the wine and iris tables, standardized per
                 column. Each is written to an ``.npy`` file under bench-out/presets-data
                 and split per seed by ``bench_peers.make_file_pool`` (test rows are never
                 trained on); seeds 0-2.
  2. Methods, each trained on the same training rows for the same number of steps:
       preset:NAME       flowmatch with ``preset_config(NAME)`` (``flowmatch train --preset``)
       cand:NAME         a candidate few-step recipe: the few-step preset's values with the
                         candidate's own (tuning only); the preset took the values of the
                         candidate with the lowest mean of best NFE<=4 W2 + Euler-1 W2
       diag:NAME         the few-step preset with a change, to explain a held-out result
                         (run after it, never used to choose)
       few-step+distill  the few-step run as teacher, then a 1-step Euler student trained for
                         30% more steps on 10k dopri5 pairs (``flowmatch distill``); its cost
                         counts the teacher, the pairs and the student
       few-step+reflow   the same with a reflow (``flowmatch reflow``) on the pairs
       torchcfm-otcfm    torchcfm's ExactOptimalTransportConditionalFlowMatcher(sigma=0)
       torchcfm-icfm     torchcfm's ConditionalFlowMatcher(sigma=0)
     The torchcfm models train in a separate environment through ``bench_peers.py``'s worker
     (same MLP, 128 x 3, SiLU, 32-d time embedding; AdamW 2e-3, cosine, EMA 0.999), never as
     a dependency of flowmatch.
  3. One evaluator for all (``bench_peers.evaluate``): exact W2 of 1000 test source points (as
     many as the test rows, when fewer) pushed through Euler 1/2/4/8/100, dopri5 and the
     few-step candidates (midpoint 2, heun 2, rk4 1, Euler 2/4 on the min-error grid), against
     the test rows; the floor is the W2 between two draws of the data.
  4. The table: mean ± sd over seeds per set and method; "best NFE<=4" is the few-step setting
     with the lowest mean W2, chosen per method. Then, per held-out set, the targets: the
     few-step preset's best NFE<=4 W2 at or below the better of OT-CFM's and I-CFM's Euler-100
     W2, and its Euler-1 W2 no worse than OT-CFM's.

Usage:
    python benchmarks/bench_presets.py --group tuning --seeds 5 --methods cand:readme ...
    python benchmarks/bench_presets.py --group held-out --seeds 0 1 2 --lane 0/2 &
    python benchmarks/bench_presets.py --group held-out --seeds 0 1 2 --lane 1/2
    python benchmarks/bench_presets.py --table-only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peers as peers

OUT = peers.OUT
DATA_DIR = OUT / "presets-data"
ROWS = 20_000  # rows written per generated set and seed


def _toy(name: str) -> Callable[[int], np.ndarray]:
    def make(seed: int) -> np.ndarray:
        from flowmatch.data import sample_toy

        return sample_toy(name, ROWS, torch.Generator().manual_seed(7919 + seed)).numpy()

    return make


def _sklearn(kind: str, noise: float, scale: float) -> Callable[[int], np.ndarray]:
    def make(seed: int) -> np.ndarray:
        from sklearn import datasets

        maker = {"circles": datasets.make_circles, "moons": datasets.make_moons}[kind]
        extra = {"factor": 0.5} if kind == "circles" else {}
        x, _ = maker(ROWS, noise=noise, random_state=7919 + seed, **extra)
        return (scale * x).astype(np.float32)

    return make


def _table(name: str) -> Callable[[int], np.ndarray]:
    """A bundled scikit-learn table, standardized per column (constant columns stay 0)."""

    def make(seed: int) -> np.ndarray:
        from sklearn import datasets

        x = getattr(datasets, f"load_{name}")().data.astype(np.float64)
        std = x.std(0)
        return ((x - x.mean(0)) / np.where(std > 0, std, 1.0)).astype(np.float32)

    return make


TUNING = {"N-8gaussians": None, "N-moons": None}  # bench_peers' own tasks
HELD_OUT: dict[str, Callable[[int], np.ndarray]] = {
    "checkerboard": _toy("checkerboard"),
    "circles-noise0.05-x3": _sklearn("circles", 0.05, 3.0),
    "moons-noise0.25-x0.5": _sklearn("moons", 0.25, 0.5),
    "digits-std": _table("digits"),
    "wine-std": _table("wine"),
    "iris-std": _table("iris"),
}
CANDIDATES: dict[str, dict] = {  # on top of the few-step preset's values; the preset is
    # the candidate with the lowest mean over the tuning runs of best NFE<=4 W2 + Euler-1 W2
    "readme": {  # the recipe of docs/benchmarks.md before presets
        "ot_batch": 16,
        "time_sampling": "logit-normal",
        "input_features": 16,
        "input_scale": 1.0,
        "width": 120,
        "time_max_freq": 1000.0,
    },
    "uniform-whole": {  # uniform t, OT on the whole batch, as torchcfm's OT-CFM
        "ot_batch": 0,
        "time_sampling": "uniform",
        "input_features": 0,
        "width": 128,
        "time_max_freq": 1000.0,
    },
    "uniform-whole-cap30": {
        "ot_batch": 0,
        "time_sampling": "uniform",
        "input_features": 0,
        "width": 128,
        "time_max_freq": 30.0,
    },
}
DIAGNOSTICS: dict[str, dict] = {  # on top of the few-step preset, run after the held-out
    # results to explain them, never to choose: the network in the data's own units
    "few-step-raw": {"standardize": False},
}
PEER_METHODS = ("torchcfm-otcfm", "torchcfm-icfm")
METHODS = (
    *(f"cand:{c}" for c in CANDIDATES),
    "preset:few-step",
    *(f"diag:{c}" for c in DIAGNOSTICS),
    "preset:density",
    "few-step+distill",
    "few-step+reflow",
    *PEER_METHODS,
)


def pool_for(name: str, seed: int) -> dict:
    if name in TUNING:
        return peers.make_pool(name, seed)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"{name}-seed{seed}.npy"
    np.save(path, HELD_OUT[name](seed))
    return peers.make_file_pool(path, seed, f"presets-{name}")


def train_flowmatch(method: str, pool: dict, args, seed: int, work: Path):
    """Train one flowmatch method; returns (model for the evaluator, wall s, CPU s)."""
    from flowmatch import preset_config, train
    from flowmatch.training import reflow

    if method.startswith("cand:"):
        name, changes = "few-step", CANDIDATES[method.split(":", 1)[1]]
    elif method.startswith("diag:"):
        name, changes = "few-step", DIAGNOSTICS[method.split(":", 1)[1]]
    elif method.startswith("preset:"):
        name, changes = method.split(":", 1)[1], {}
    else:  # few-step+distill, few-step+reflow
        name, changes = "few-step", {}
    cfg = preset_config(
        name,
        data=str(pool["data"]),
        steps=args.steps,
        batch_size=args.batch_size,
        seed=seed,
        threads=1,
        log_every=max(1, args.steps // 4),
        checkpoint_every=args.steps,
        **changes,
    )
    run = train(cfg, work / "run")
    if "+" not in method:
        return peers._flow_model(run.run_dir), run.seconds, run.cpu_seconds
    r = reflow(
        run.run_dir,
        work / "second",
        n_pairs=args.pairs,
        seed=seed,
        solver="dopri5",
        method="distill" if method.endswith("distill") else "fm",
        distill_steps=1,
        train_steps=round(args.steps * args.second_share),
        overrides={"warmup_steps": 20, "log_every": 500, "checkpoint_every": args.steps},
    )
    wall = run.seconds + r.pairs_seconds + r.train.seconds
    cpu = run.cpu_seconds + r.pairs_seconds + r.train.cpu_seconds
    return peers._flow_model(r.train.run_dir), wall, cpu


# -- the table ----------------------------------------------------------------------------------
def _mean(rows: list[dict], key: Callable[[dict], float]) -> float:
    return statistics.fmean(key(r) for r in rows)


def _best(rows: list[dict]) -> str:
    return min(peers.FEW_STEP, key=lambda s: _mean(rows, lambda r: r["w2"][s]))


def print_table(results: list[dict]) -> str:
    runs = {}  # a run repeated after a restart counts once (its first result)
    for r in results:
        runs.setdefault((r["set"], r["seed"], r["method"]), r)
    lines = []
    names = [*TUNING, *HELD_OUT]
    for name in [n for n in names if any(k[0] == n for k in runs)]:
        rows = [r for k, r in runs.items() if k[0] == name]
        group = rows[0]["group"]
        seeds = sorted({r["seed"] for r in rows})
        lines.append(f"\n### {name} ({group}; seeds {', '.join(map(str, seeds))})\n")
        head = ["method", "n", "E1", "E2", "E4", "E100", "dopri5", "best NFE<=4", "CPU s"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        by_method = {}
        for m in METHODS:
            mine = [r for r in rows if r["method"] == m]
            if not mine:
                continue
            by_method[m] = mine
            best = _best(mine)
            cells = [m, str(len(mine))]
            cells += [peers._ms([r["w2"][s] for r in mine]) for s in ("euler-1", "euler-2")]
            cells += [peers._ms([r["w2"][s] for r in mine]) for s in ("euler-4", "euler-100")]
            cells.append(peers._ms([r["w2"]["dopri5"] for r in mine]))
            cells.append(f"{peers._ms([r['w2'][best] for r in mine])} ({best})")
            cells.append(peers._ms([r["cpu_seconds"] for r in mine], 0))
            lines.append("| " + " | ".join(cells) + " |")
        floor = [r["floor"] for r in rows if r["method"] == rows[0]["method"]]
        lines.append(f"| data floor | | {peers._ms(floor)} |" + " |" * (len(head) - 3))
        lines.extend(_targets(by_method, group))
    text = "\n".join(lines)
    print(text)
    return text


def _targets(by_method: dict[str, list[dict]], group: str) -> list[str]:
    """The issue's targets for the few-step preset, on seeds every method finished."""
    need = ("preset:few-step", *PEER_METHODS)
    if group != "held-out" or not all(m in by_method for m in need):
        return []
    common = set.intersection(*({r["seed"] for r in by_method[m]} for m in need))
    rows = {m: [r for r in by_method[m] if r["seed"] in common] for m in need}
    ours = rows["preset:few-step"]
    best = _best(ours)
    w2 = _mean(ours, lambda r: r["w2"][best])
    peer100 = min(_mean(rows[m], lambda r: r["w2"]["euler-100"]) for m in PEER_METHODS)
    e1 = _mean(ours, lambda r: r["w2"]["euler-1"])
    ot1 = _mean(rows["torchcfm-otcfm"], lambda r: r["w2"]["euler-1"])
    return [
        f"\nfew-step preset ({len(common)} seeds): best NFE<=4 W2 {w2:.3f} ({best}) vs the "
        f"better peer's Euler-100 {peer100:.3f}: {'met' if w2 <= peer100 else 'NOT met'}; "
        f"Euler-1 {e1:.3f} vs OT-CFM's {ot1:.3f}: {'met' if e1 <= ot1 else 'NOT met'}"
    ]


# -- running ------------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group", choices=("tuning", "held-out"), default="held-out")
    p.add_argument("--sets", nargs="+", help="default: every set of --group")
    p.add_argument("--methods", nargs="+", choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, help="default: 5 tuning, 0 1 2 held-out")
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps per method")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--width", type=int, default=128, help="the peers' MLP width")
    p.add_argument("--depth", type=int, default=3, help="the peers' MLP depth")
    p.add_argument("--pairs", type=int, default=10_000, help="teacher pairs of +distill/+reflow")
    p.add_argument("--second-share", type=float, default=0.3, help="+distill/+reflow's steps")
    p.add_argument("--lane", default="0/1", help="i/n: run every n-th job from the i-th")
    p.add_argument("--peer-venv", type=Path, default=peers.VENV)
    p.add_argument("--results", type=Path, default=OUT / "presets.jsonl")
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.table_only:
        print_table([json.loads(ln) for ln in args.results.read_text().splitlines() if ln])
        return
    sets = args.sets or list(TUNING if args.group == "tuning" else HELD_OUT)
    unknown = set(sets) - set(TUNING) - set(HELD_OUT)
    if unknown:
        raise SystemExit(f"unknown sets {sorted(unknown)}")
    seeds = args.seeds or ([5] if args.group == "tuning" else [0, 1, 2])
    methods = args.methods or ["preset:few-step", *PEER_METHODS]
    python = peers.ensure_peer_venv(args.peer_venv) if set(methods) & set(PEER_METHODS) else None
    lane, lanes = (int(v) for v in args.lane.split("/"))
    done = set()
    if args.results.exists():
        for ln in args.results.read_text().splitlines():
            r = json.loads(ln)
            done.add((r["set"], r["seed"], r["method"], r["steps"]))
    jobs = [(s, n, m) for s in seeds for n in sets for m in methods]
    from flowmatch.metrics import wasserstein2

    for s, n, m in jobs[lane::lanes]:
        if (n, s, m, args.steps) in done:
            continue
        pool = pool_for(n, s)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            if m in PEER_METHODS:
                model, wall, cpu = peers.train_peer(python, m, pool, args, s, Path(tmp))
            else:
                model, wall, cpu = train_flowmatch(m, pool, args, s, Path(tmp))
            scores = peers.evaluate(model, pool)
        row = {
            "set": n,
            "group": "tuning" if n in TUNING else "held-out",
            "seed": s,
            "method": m,
            "steps": args.steps,
            "seconds": wall,
            "cpu_seconds": cpu,
            "floor": wasserstein2(pool["x1_floor"], pool["x1_test"]),
            **scores,
        }
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        w2 = scores["w2"]
        best = min(peers.FEW_STEP, key=lambda k: w2[k])
        print(
            f"{n:<22} seed {s} {m:<20} cpu {cpu:6.1f}s E1 {w2['euler-1']:.3f} best<=4 "
            f"{w2[best]:.3f} E100 {w2['euler-100']:.3f} floor {row['floor']:.3f} "
            f"({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    print_table([json.loads(ln) for ln in args.results.read_text().splitlines() if ln])


if __name__ == "__main__":
    main()
