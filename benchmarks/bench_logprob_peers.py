"""Exact log p at equal accuracy: flowmatch against facebookresearch/flow_matching 1.0.10.

What it does:
  1. Trains (or loads from ``bench-out/logprob-peers/``) flowmatch fields, one thread, with
     the training seed ``--seed``; every training setting is written out in ``FIELDS`` and
     ``PINNED_*`` (not taken from the library's defaults, which may change):
       moons         MLP with the sinusoidal time embedding's max frequency at 1000 (the
                     default when these fields were set), width 128, depth 3, batch 512,
                     4000 steps (the old likelihood speed test's model)
       moons-t30     the same with max frequency 30: a field smooth in t (not in the default
                     list of --fields)
       checkerboard  the likelihood benchmark's 2-D configuration: 256x3 MLP, time max
                     frequency 30, 64 random Fourier features of scale 3, logit-normal times
                     (mean 1) with a 20% uniform share, batch 512, 4000 steps
       digits        64-D, 512x3 MLP, time max frequency 30, logit transform alpha 0.001,
                     weight decay 0.1, batch 256, 2000 steps
  2. Draws held-out points (2-D: 1000 fresh points; digits: 200 dequantized test images;
     seed 7 + the training seed) and computes the reference log p with flowmatch in
     float64: dopri5 at atol = rtol = 1e-9, exact divergence.
  3. Agreement: flow_matching's own dopri5 in float64 at 1e-9 on the same field and points,
     against the reference (the two libraries compute the same quantity).
  4. For each library, searches its settings for the cheapest that meets the bar, mean
     |error| <= 0.01 nats against the reference (the max over points is reported too):
       flow_matching  ``ODESolver.compute_likelihood(exact_divergence=True)``, float32, with
                      torchdiffeq's fixed-grid midpoint, heun3 and rk4 (the 3/8 rule) at
                      step size 1 / N, and its adaptive dopri5, bosh3 and dopri8 at
                      atol = rtol = tol
       flowmatch      ``flow.log_prob_with_stats(divergence="exact")``, float32, with the
                      fixed-grid midpoint, rk4, rk38 and dp5 on N uniform steps, rk38, rk4
                      and midpoint with the divergence at n Gauss-Legendre nodes per step
                      (``divergence_nodes``), and adaptive dopri5 and bosh3 (batch norm);
                      dopri5 with either norm is also searched for the loosest tolerance
                      whose worst point meets the bar (for the default)
     Each family tries N = 2, 4, 8, ... (tol = 1e-2, 1e-3, ...) until one passes, then the
     N between the last miss and the first pass that an error ~ N^-order predicts.
     ``--families fixed`` searches the fixed-grid families of both libraries only (the
     adaptive ones cost most of the 64-D search and won for neither library there).
  5. Times the cheapest passing setting of each library in interleaved rounds (A B B A ...),
     one thread each, and reports the median CPU (``time.process_time``) and wall seconds per
     1000 points, and the ratio. flow_matching runs in the isolated venv
     ``bench-out/peer-venv`` (torch 2.13.0 CPU, flow-matching 1.0.10; created if missing) in
     ``logprob_peer_worker.py``; it is only run, never a dependency (its licence is CC-BY-NC).
  6. Reports the default ``flow.log_prob(x)`` (no options: dopri5 at 1e-5 with the per-point
     error norm, exact divergence up to D = 64) on each field: NFE, CPU time, mean and max
     error, beside what it replaced (2-D: the batch RMS norm; 64-D: Hutchinson's estimate
     with 4 probes, the default while ``auto`` was exact only up to D = 16).

Usage:
    python benchmarks/bench_logprob_peers.py                      # all three fields, seed 0
    python benchmarks/bench_logprob_peers.py --fields moons,checkerboard --seed 1
    python benchmarks/bench_logprob_peers.py --fields digits --seed 1 --families fixed
    python benchmarks/bench_logprob_peers.py --table-only         # re-print the saved results
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from flowmatch.likelihood import AUTO_EXACT_MAX_DIM

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-out"
CACHE = OUT / "logprob-peers"
VENV = OUT / "peer-venv"
TORCH_SPEC = "torch==2.13.0"
PEER_SPEC = "flow-matching==1.0.10"
WORKER = Path(__file__).resolve().parent / "logprob_peer_worker.py"
BAR = 0.01  # nats: mean |error| against the reference
REFERENCE_TOL = 1e-9
POINTS = {"moons": 1000, "moons-t30": 1000, "checkerboard": 1000, "digits": 200}
STEPS = (2, 4, 8, 16, 32, 64, 128, 256)
TOLS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
ORDER = {"midpoint": 2, "heun3": 3, "rk4": 4, "rk38": 4, "dp5": 5}
DEFAULT_LABEL = "default log_prob (dopri5 1e-5, sample norm, exact divergence)"


def set_cache(path: Path) -> None:
    global CACHE
    CACHE = path


# -- fields ----------------------------------------------------------------------------------
# Every setting that shapes a benchmark field, written out rather than taken from the library's
# defaults, so that a change of a training default does not change the fields measured here.
PINNED_MODEL = {
    "name": "mlp", "width": 256, "depth": 3, "activation": "silu", "time_embed_dim": 32,
    "time_max_freq": 1000.0, "input_features": 0, "input_scale": 1.0,
}  # fmt: skip
PINNED_TRAIN = {
    "method": "fm", "path": "linear", "sigma_min": 0.0, "lr": 2e-3, "optimizer": "adamw",
    "weight_decay": 0.0, "warmup_steps": 100, "lr_decay": "cosine", "min_lr_ratio": 0.05,
    "grad_clip": 1.0, "ema_decay": 0.999, "time_sampling": "uniform", "logit_normal_mean": 0.0,
    "logit_normal_std": 1.0, "time_uniform_share": 0.0, "coupling": "independent",
    "source": "gaussian", "standardize": True, "logit": 0.0, "holdout_fraction": 0.1,
    "precision": "fp32", "compile": False,
}  # fmt: skip
FIELDS: dict[str, tuple[dict, dict]] = {  # field -> (model overrides, training overrides)
    "moons": ({"width": 128}, {"steps": 4000, "batch_size": 512}),
    "moons-t30": ({"width": 128, "time_max_freq": 30.0}, {"steps": 4000, "batch_size": 512}),
    "checkerboard": (
        {"time_max_freq": 30.0, "input_features": 64, "input_scale": 3.0},
        {
            "steps": 4000,
            "batch_size": 512,
            "warmup_steps": 200,
            "time_sampling": "logit-normal",
            "logit_normal_mean": 1.0,
            "time_uniform_share": 0.2,
        },
    ),
    "digits": (
        {"width": 512, "time_max_freq": 30.0},
        {
            "steps": 2000,
            "batch_size": 256,
            "lr": 1e-3,
            "warmup_steps": 200,
            "weight_decay": 0.1,
            "logit": 0.001,
        },
    ),
}


DATA = {"moons-t30": "moons"}  # fields named other than their data set


def train_config(field: str, seed: int = 0):
    """The training configuration of one benchmark field (see the module docstring)."""
    from flowmatch import ModelConfig, TrainConfig

    model, train = FIELDS[field]
    common = {"data": DATA.get(field, field), "device": "cpu", "threads": 1, "seed": seed}
    common |= {"log_every": 500, "checkpoint_every": 10**9}
    return TrainConfig(
        model=ModelConfig(**(PINNED_MODEL | model)), **(PINNED_TRAIN | train | common)
    )


def load_field(field: str, train_steps: int = 0, seed: int = 0):
    """Train the field once (cached under bench-out/) and load it; returns (flow, seconds)."""
    import dataclasses

    import flowmatch

    run = CACHE / (f"field-{field}" + (f"-seed{seed}" if seed else ""))
    seconds = 0.0
    if not (run / "config.json").exists():
        start = time.process_time()
        cfg = train_config(field, seed)
        if train_steps:
            cfg = dataclasses.replace(cfg, steps=train_steps)
        flowmatch.train(cfg, run)
        seconds = time.process_time() - start
    return flowmatch.load(run), seconds


def export_field(flow) -> dict:
    """The tensors of the MLP, for the peer worker's plain re-implementation."""
    v = flow.velocity
    linears = [(m.weight.detach(), m.bias.detach()) for m in v.net if hasattr(m, "weight")]
    act = type(v.net[1]).__name__.lower()
    out = {"time_freqs": v.time_embed.freqs.detach(), "linears": linears, "activation": act}
    if v.input_embed is not None:
        out["input_freqs"] = v.input_embed.freqs.detach()
    return out


def test_points(field: str, n: int, seed: int = 7) -> torch.Tensor:
    from flowmatch.data import get_dataset

    data = get_dataset(DATA.get(field, field))
    return data.held_out(n, torch.Generator().manual_seed(seed)).float()


# -- the isolated environment ------------------------------------------------------------------
def ensure_peer_venv() -> Path:
    """bench-out/peer-venv with CPU torch and flow-matching 1.0.10 (idempotent)."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import flow_matching.solver"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    OUT.mkdir(exist_ok=True)
    run = lambda *a: subprocess.run(a, check=True)  # noqa: E731
    if not python.exists():
        run(sys.executable, "-m", "venv", str(VENV))
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(*pip, TORCH_SPEC)  # CPU torch first, so flow-matching does not pull a CUDA build
    run(*pip, PEER_SPEC, "tqdm", TORCH_SPEC)  # flow_matching.solver imports tqdm
    return python


def run_peer(python: Path, exported: dict, z1: torch.Tensor, settings: list[dict], dtype: str):
    """Run flow_matching on the settings in one worker process; returns (results, probe_v)."""
    job, out = CACHE / f"peer-job-{os.getpid()}.pt", CACHE / f"peer-out-{os.getpid()}.pt"
    probe = torch.linspace(-2, 2, 8 * z1.shape[1]).reshape(8, z1.shape[1])
    torch.save(
        {"field": exported, "z1": z1, "probe": probe, "settings": settings, "dtype": dtype}, job
    )
    res = subprocess.run([str(python), str(WORKER), str(job), str(out)], capture_output=True)
    if res.returncode:
        raise SystemExit(f"peer worker failed:\n{res.stderr.decode()[-3000:]}")
    got = torch.load(out, weights_only=False)
    return got["results"], probe, got["probe_v"]


# -- flowmatch runs ----------------------------------------------------------------------------
def run_ours(flow, x: torch.Tensor, options: dict) -> dict:
    """flowmatch's exact log p with ``options``; the CPU and wall seconds of the call alone."""
    return run_options(flow, x, {"divergence": "exact"} | options)


def run_options(flow, x: torch.Tensor, options: dict) -> dict:
    """flowmatch's log p with ``options`` as given (none: the defaults); CPU and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    r = flow.log_prob_with_stats(x, **options)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"log_p": r.log_prob.detach(), "nfe": r.nfe, "cpu": cpu, "wall": wall}


def errors(log_p: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    err = (log_p.double() - ref).abs()
    if not torch.isfinite(err).all():
        return math.inf, math.inf
    return err.mean().item(), err.max().item()


def describe(setting: dict) -> str:
    """A short label of a setting of either library."""
    s = setting["method"] if "method" in setting else setting["solver"]
    if "steps" in setting:
        s += f" {setting['steps']} steps"
    if setting.get("divergence_nodes"):
        s += f", div at {setting['divergence_nodes']} GL nodes/step"
    if "tol" in setting:
        s += f" tol {setting['tol']:g}"
    if "atol" in setting:
        s += f" tol {setting['atol']:g}"
    if setting.get("error_norm"):
        s += f" ({setting['error_norm']} norm)"
    return s


def search(evaluate, families: list[tuple], ref: torch.Tensor, log: list) -> list:
    """For each family, the cheapest passing setting: (setting, result) pairs that pass.

    ``families`` are (base setting, kind[, "worst"]) with kind "steps" (2, 4, ... fixed steps)
    or "tol" (1e-2, 1e-3, ...); "worst" searches for the max error <= the bar instead (those
    settings are listed but not candidates for the cheapest). ``evaluate(setting)`` returns a
    result dict with log_p, nfe, cpu.
    """
    passing = []
    for base, kind, *flags in families:
        worst_bar = "worst" in flags
        last = None
        values = STEPS if kind == "steps" else TOLS
        for value in values:
            setting = base | ({"steps": value} if kind == "steps" else {"tol": value})
            r = evaluate(setting)
            mean, worst = errors(r["log_p"], ref)
            log.append({"setting": describe(setting), "nfe": r["nfe"], "cpu": r["cpu"]} | {
                "mean_err": mean, "max_err": worst})  # fmt: skip
            print(f"    {describe(setting):<52} NFE {r['nfe']:>5}  CPU {r['cpu']:7.2f}s  "
                  f"mean {mean:.4f}  max {worst:.4f}", flush=True)  # fmt: skip
            if worst_bar:
                if worst <= BAR:
                    break
                continue
            if mean <= BAR:
                passing.append((setting, r))
                if kind == "steps" and last is not None:  # the N an error ~ N^-p predicts
                    order = ORDER.get(base.get("method", base.get("solver")), 2)
                    guess = math.ceil(last[0] * (last[1] / BAR) ** (1 / order) * 1.05)
                    if last[0] < guess < value:
                        setting = base | {"steps": guess}
                        r = evaluate(setting)
                        mean, worst = errors(r["log_p"], ref)
                        log.append({"setting": describe(setting), "nfe": r["nfe"]} | {
                            "cpu": r["cpu"], "mean_err": mean, "max_err": worst})  # fmt: skip
                        print(f"    {describe(setting):<52} NFE {r['nfe']:>5}  CPU "
                              f"{r['cpu']:7.2f}s  mean {mean:.4f}  max {worst:.4f}")  # fmt: skip
                        if mean <= BAR:
                            passing.append((setting, r))
                break
            last = (value, mean)
    return passing


def ours_setting(setting: dict) -> dict:
    """A search setting as ``log_prob_with_stats`` options."""
    out = {"solver": setting["solver"]}
    if "steps" in setting:
        out["steps"] = setting["steps"]
    if "tol" in setting:
        out |= {"atol": setting["tol"], "rtol": setting["tol"]}
    for key in ("divergence_nodes", "error_norm"):
        if key in setting:
            out[key] = setting[key]
    out.setdefault("error_norm", "batch")
    return out


def our_families(fixed_only: bool = False) -> list[tuple]:
    """flowmatch's searched families; ``fixed_only`` drops the adaptive ones."""
    fams: list[tuple] = []
    for solver in ("midpoint", "rk4", "rk38", "dp5"):
        fams.append(({"solver": solver}, "steps"))
    for solver, nodes in (("rk38", 1), ("rk38", 2), ("rk4", 2), ("midpoint", 2), ("rk38", 3)):
        fams.append(({"solver": solver, "divergence_nodes": nodes}, "steps"))
    if fixed_only:
        return fams
    for solver in ("dopri5", "bosh3"):
        fams.append(({"solver": solver, "error_norm": "batch"}, "tol"))
    # for the default: the loosest tolerance whose worst point meets the bar, per norm
    fams.append(({"solver": "dopri5", "error_norm": "sample"}, "tol", "worst"))
    fams.append(({"solver": "dopri5", "error_norm": "batch"}, "tol", "worst"))
    return fams


PEER_FAMILIES: list[tuple[dict, str]] = [
    ({"method": "midpoint"}, "steps"),
    ({"method": "heun3"}, "steps"),
    ({"method": "rk4"}, "steps"),
    ({"method": "dopri5"}, "tol"),
    ({"method": "bosh3"}, "tol"),
    ({"method": "dopri8"}, "tol"),
]


def load_reference(flow, x: torch.Tensor, field: str, seed: int) -> dict:
    """The float64 dopri5 reference log p of the points x (cached): log_p, nfe, cpu."""
    ref_file = CACHE / f"reference-{field}-seed{seed}-{x.shape[0]}.pt"
    if ref_file.exists():
        return torch.load(ref_file)
    flow64 = flow.double()
    cpu = time.process_time()
    r = flow64.log_prob_with_stats(
        x.double(), solver="dopri5", atol=REFERENCE_TOL, rtol=REFERENCE_TOL,
        divergence="exact", error_norm="batch",
    )  # fmt: skip
    saved = {"log_p": r.log_prob.detach(), "nfe": r.nfe, "cpu": time.process_time() - cpu}
    torch.save(saved, ref_file)
    flow.float()
    return saved


# -- one field ---------------------------------------------------------------------------------
def bench_field(field: str, python: Path, args) -> dict:
    torch.set_num_threads(1)
    print(f"\n== {field}", flush=True)
    flow, train_cpu = load_field(field, args.train_steps, args.seed)
    n = args.points or POINTS[field]
    x = test_points(field, n, 7 + args.seed)
    z1 = flow.standardize(x.reshape(n, *flow.shape)).reshape(n, -1)
    offset = flow.log_abs_det_to_z(x).double()  # (n,) or scalar: z units -> data units
    exported = export_field(flow)
    record: dict = {"field": field, "seed": args.seed, "points": n, "train_cpu_s": train_cpu}

    ref_saved = load_reference(flow, x, field, args.seed)
    if args.prepare_only:
        return record
    ref = ref_saved["log_p"].double()
    record["reference"] = {"nfe": ref_saved["nfe"], "cpu": ref_saved["cpu"]}
    print(f"  reference: dopri5 {REFERENCE_TOL:g} float64, NFE {ref_saved['nfe']}, "
          f"{ref_saved['cpu']:.1f}s CPU", flush=True)  # fmt: skip

    # agreement: flow_matching's dopri5 in float64 at the reference tolerance
    given = args.ours is not None
    agree, probe, probe_v = (
        ([], None, None)
        if given
        else run_peer(
            python, exported, z1.double(), [{"method": "dopri5", "tol": REFERENCE_TOL}], "float64"
        )
    )
    if agree:
        with torch.no_grad():
            ours_v = flow.velocity(probe.float(), torch.tensor(0.37))
        peer_lp = agree[0]["log_p"].double() + offset
        record["agreement"] = {
            "nfe": agree[0]["nfe"],
            "max_abs_diff": (peer_lp - ref).abs().max().item(),
            "mean_abs_diff": (peer_lp - ref).abs().mean().item(),
            "field_max_abs_diff": (probe_v.float() - ours_v).abs().max().item(),
        }
        print(f"  agreement: {record['agreement']}", flush=True)

    # search: flowmatch
    print("  flowmatch search:", flush=True)
    ours_log: list = []

    def ours_eval(setting: dict) -> dict:
        return run_ours(flow, x, ours_setting(setting))

    fixed_only = args.families == "fixed"
    if given:  # the settings chosen elsewhere (another seed), checked here without a search
        ours_pass = [(args.ours, ours_eval(args.ours))]
    else:
        ours_pass = search(ours_eval, our_families(fixed_only), ref, ours_log)

    # search: flow_matching, one worker call per family step (it stops at the first pass)
    print("  flow_matching search:", flush=True)
    peer_log: list = []

    def peer_eval(setting: dict) -> dict:
        (res,), _, _ = run_peer(python, exported, z1, [setting], "float32")
        return res | {"log_p": res["log_p"].double() + offset}

    peer_families = [f for f in PEER_FAMILIES if not fixed_only or f[1] == "steps"]
    if given:
        peer_pass = [(args.peer, peer_eval(args.peer))]
    else:
        peer_pass = search(peer_eval, peer_families, ref, peer_log)
    record["given_settings"] = given
    for who, passing, log in (
        ("flowmatch", ours_pass, ours_log),
        ("flow_matching", peer_pass, peer_log),
    ):
        if given:
            mean, worst = errors(passing[0][1]["log_p"], ref)
            log.append({"setting": describe(passing[0][0]), "nfe": passing[0][1]["nfe"]} | {
                "cpu": passing[0][1]["cpu"], "mean_err": mean, "max_err": worst})  # fmt: skip
            print(f"  {who} given: {log[-1]}", flush=True)
    record["search"] = {"flowmatch": ours_log, "flow_matching": peer_log}
    if not ours_pass or not peer_pass:
        record["timing"] = None
        return record

    best_ours = min(ours_pass, key=lambda p: p[1]["cpu"])[0]
    best_peer = min(peer_pass, key=lambda p: p[1]["cpu"])[0]
    # the default, and what it replaced, timed in the same rounds
    if flow.dim > AUTO_EXACT_MAX_DIM:  # log_prob's auto was Hutchinson's estimate here
        previous = "previous default: Hutchinson, 4 probes", {"divergence": "hutchinson"}
    else:
        previous = "dopri5 1e-5, batch norm (the default before the per-point norm)", {
            "error_norm": "batch"}  # fmt: skip
    timing = {"flowmatch": [], "flow_matching": [], "default": [], "default_old": []}
    for k in range(args.rounds):
        order = ["flowmatch", "flow_matching"] if k % 2 == 0 else ["flow_matching", "flowmatch"]
        for who in order:
            if who == "flowmatch":
                r = run_ours(flow, x, ours_setting(best_ours))
            else:
                r = peer_eval(best_peer)
            timing[who].append(r)
        if k < 2:  # the default: two rounds are enough for its cost and errors
            timing["default"].append(run_options(flow, x, {}))
            timing["default_old"].append(run_options(flow, x, previous[1]))

    def summary(label: str, runs: list[dict]) -> dict:
        mean, worst = errors(runs[0]["log_p"], ref)
        scale = 1000.0 / n
        return {
            "setting": label,
            "nfe": runs[0]["nfe"],
            "mean_err": mean,
            "max_err": worst,
            "cpu_per_1000": statistics.median(r["cpu"] for r in runs) * scale,
            "wall_per_1000": statistics.median(r["wall"] for r in runs) * scale,
            "cpu_runs": [r["cpu"] * scale for r in runs],
        }

    record["timing"] = {
        "flowmatch": summary(describe(best_ours), timing["flowmatch"]),
        "flow_matching": summary(describe(best_peer), timing["flow_matching"]),
        "default": summary(DEFAULT_LABEL, timing["default"]),
        "default_old": summary(previous[0], timing["default_old"]),
    }
    t = record["timing"]
    print(f"  ratio CPU {t['flow_matching']['cpu_per_1000'] / t['flowmatch']['cpu_per_1000']:.2f}x",
          flush=True)  # fmt: skip
    return record


# -- tables ------------------------------------------------------------------------------------
def _name(rec: dict) -> str:
    name = rec["field"] + (f" (seed {rec['seed']})" if rec.get("seed") else "")
    return name + (", given settings" if rec.get("given_settings") else "")


def print_tables(records: list[dict]) -> None:
    print("\n### Cheapest setting meeting mean |error| <= 0.01 nats, per 1000 points, one thread\n")
    print("| field | library | setting | NFE | mean / max error (nats) | CPU s | wall s | "
          "flow_matching CPU / flowmatch CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for rec in records:
        t = rec.get("timing")
        if not t:
            print(f"| {_name(rec)} | no passing setting found | | | | | | |")
            continue
        ratio = t["flow_matching"]["cpu_per_1000"] / t["flowmatch"]["cpu_per_1000"]
        for who in ("flowmatch", "flow_matching"):
            s = t[who]
            cell = f"**{ratio:.2f}x**" if who == "flowmatch" else ""
            print(f"| {_name(rec)} | {who} | {s['setting']} | {s['nfe']} | "
                  f"{s['mean_err']:.4f} / {s['max_err']:.4f} | {s['cpu_per_1000']:.2f} | "
                  f"{s['wall_per_1000']:.2f} | {cell} |")  # fmt: skip

    print("\n### The default `flow.log_prob(x)` (no options), per 1000 points\n")
    print("| field | setting | NFE | mean error | max error | CPU s |")
    print("|---|---|---|---|---|---|")
    for rec in records:
        t = rec.get("timing")
        if not t:
            continue
        for key in ("default", "default_exact", "default_old"):  # default_exact: older records
            if key not in t:
                continue
            s = t[key]
            print(f"| {_name(rec)} | {s['setting']} | {s['nfe']} | {s['mean_err']:.4f} | "
                  f"{s['max_err']:.4f} | {s['cpu_per_1000']:.2f} |")  # fmt: skip

    print("\n### Agreement with flow_matching (float64 dopri5 1e-9 in both libraries)\n")
    print("| field | points | reference NFE | flow_matching NFE | max |difference| (nats) | "
          "field max |difference| |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for rec in records:
        if "agreement" not in rec:
            continue
        a = rec["agreement"]
        print(f"| {_name(rec)} | {rec['points']} | {rec['reference']['nfe']} | {a['nfe']} | "
              f"{a['max_abs_diff']:.2e} | {a['field_max_abs_diff']:.2e} |")  # fmt: skip

    for rec in records:
        print(f"\n#### Search on {_name(rec)} ({rec['points']} points; CPU s of one run)\n")
        print("| library | setting | NFE | CPU s | mean error | max error |")
        print("|---|---|---|---|---|---|")
        for who in ("flowmatch", "flow_matching"):
            for row in rec["search"][who]:
                print(f"| {who} | {row['setting']} | {row['nfe']} | {row['cpu']:.2f} | "
                      f"{row['mean_err']:.4f} | {row['max_err']:.4f} |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", default="moons,checkerboard,digits")
    p.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    p.add_argument("--points", type=int, default=0, help="points per field (0: the defaults)")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--cache", default=str(CACHE), help="fields, references and results")
    p.add_argument("--train-steps", type=int, default=0, help="override (0: the defaults)")
    p.add_argument("--prepare-only", action="store_true", help="train and reference, no timing")
    p.add_argument("--seed", type=int, default=0, help="training seed (test points: 7 + seed)")
    p.add_argument(
        "--ours",
        type=json.loads,
        help="JSON setting of flowmatch to time instead of searching (with --peer), e.g. "
        '\'{"solver": "rk38", "steps": 4, "divergence_nodes": 3}\'; skips the agreement check',
    )
    p.add_argument(
        "--peer",
        type=json.loads,
        help='flow_matching\'s, e.g. \'{"method": "heun3", "steps": 10}\'',
    )
    p.add_argument(
        "--families",
        choices=["all", "fixed"],
        default="all",
        help="searched settings: all, or the fixed-grid ones only (both libraries alike)",
    )
    args = p.parse_args()
    if (args.ours is None) != (args.peer is None):
        p.error("--ours and --peer go together")
    set_cache(Path(args.cache))
    CACHE.mkdir(parents=True, exist_ok=True)
    results_file = CACHE / "results.json"
    if args.table_only:
        print_tables(json.loads(results_file.read_text()))
        return
    python = ensure_peer_venv()
    for field in args.fields.split(","):
        rec = bench_field(field, python, args)
        if args.prepare_only:
            continue
        # read again: another run (another field) may have written meanwhile
        saved = json.loads(results_file.read_text()) if results_file.exists() else []
        key = (field, args.seed)
        saved = [r for r in saved if (r["field"], r.get("seed", 0)) != key] + [rec]
        results_file.write_text(json.dumps(saved, indent=1))
    print_tables(json.loads(results_file.read_text()) if results_file.exists() else [])


if __name__ == "__main__":
    main()
