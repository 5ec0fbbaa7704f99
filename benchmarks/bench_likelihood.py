"""Likelihood benchmark: flow matching against maximum-likelihood CNFs, and exact log p speed.

Part 1, density estimation. On checkerboard, 8gaussians and moons (2-D, known entropies) and
on digits (64-D, 17 grey levels, uniformly dequantized), an MLP velocity model is trained
by flow matching (``--method fm``) and by maximum likelihood through the ODE (``--method cnf``)
for the same wall-clock budget. The 2-D flow-matching runs feed the MLP random Fourier
features of x (``--input-features 64 --input-scale 3``) and draw training times from a
logit-normal with mean 1 mixed with 20% uniform ones (``TOY_FM_FEATURES``, ``TOY_FM_TIMES``).
Each run is then scored on held-out data by the exact change of variables with dopri5
(atol = rtol = 1e-5): test NLL in nats (bits/dim for digits, with the
standardization's log-det included and a bin width of one grey level), its gap to the true
entropy, the training wall time and steps, the NFE per training step and of the evaluation.
Digits runs keep the checkpoint with the best validation NLL (early stopping on the fixed
validation split); the 2-D sets draw fresh data every step and need none. Digits runs map the
dequantized pixels onto R with a logit transform (``--logit``, alpha ``--digits-logit``)
before standardizing, and their test images are scored both with one dequantization each
and with the mean density of ``--dequant-samples`` K of them (a tighter bound on the
discrete NLL; both are reported).

Part 2, speed of exact log-likelihood. For 10,000 2-D points under a trained flow-matching
model it times (a) the textbook implementation, Euler steps with the divergence as a Python
loop of one autograd call per dimension, and (b) flowmatch's ``log_prob`` (the divergence
vectorized with torch.func) with rk4 and dopri5, each at the cheapest setting whose mean
per-point error against a tight float64 dopri5 reference is at most 0.01 nats.

Every training and timing process uses one CPU thread (``--device cpu``), so jobs run side by
side (``--jobs``) without disturbing each other's clocks.

Usage:
    python benchmarks/bench_likelihood.py --budget 100 --digits-budget 300   # ~45 min, 1 core
    python benchmarks/bench_likelihood.py --budget 300 --jobs 8    # longer, in parallel
    python benchmarks/bench_likelihood.py --datasets moons --methods fm --speed-freqs ''
    python benchmarks/bench_likelihood.py --fm-freqs 30,1000 --speed-freqs 30,1000  # + stiff t
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path

import torch

ENTROPY = {"checkerboard": math.log(32.0), "8gaussians": 2.833, "moons": 2.391}
"""True differential entropies in nats (checkerboard: uniform on 8 squares of area 4)."""

REFERENCE_BPD = {"linear autoregressive (issue)": 2.05, "full-covariance Gaussian (issue)": 2.99}
TOY_TEST_POINTS = 5000
EVAL = {"solver": "dopri5", "atol": 1e-5, "rtol": 1e-5}
ACCURACY = 0.01  # nats: the speed comparison's bar against the reference
DIGITS_LOGIT = 0.001  # alpha of the digits runs' logit transform (see flowmatch.data.logit)
DIGITS_WEIGHT_DECAY = 0.1  # 1257 training images: the 512-wide MLP overfits without it
# 2-D flow matching: random Fourier features of x (sharp edges, see FourierFeatures) and
# training times skewed towards the data end, where the edges form, mixed with U[0, 1] so the
# field near t = 0 stays trained
TOY_FM_FEATURES = {"input_features": 64, "input_scale": 3.0}
TOY_FM_TIMES = {
    "time_sampling": "logit-normal",
    "logit_normal_mean": 1.0,
    "time_uniform_share": 0.2,
}


# -- configurations -----------------------------------------------------------------------------
def make_config(dataset: str, method: str, device: str, freq: float, logit: float = DIGITS_LOGIT):
    """The training configuration of one benchmark run (all but the number of steps).

    ``freq`` is the time embedding's largest angular frequency (``--time-max-freq``);
    ``logit`` the alpha of the digits runs' logit transform (``--logit``, 0: none).
    """
    from flowmatch import ModelConfig, TrainConfig

    digits = dataset == "digits"
    common = {"data": dataset, "method": method, "device": device, "threads": 1, "seed": 0}
    if digits:
        common["logit"] = logit
    common |= {"log_every": 100, "checkpoint_every": 10**9, "warmup_steps": 200}
    if method == "fm":
        if digits:
            return TrainConfig(
                model=ModelConfig(width=512, depth=3, time_max_freq=freq),
                batch_size=256,
                lr=1e-3,
                weight_decay=DIGITS_WEIGHT_DECAY,
                **common,
            )
        return TrainConfig(
            model=ModelConfig(width=256, depth=3, time_max_freq=freq, **TOY_FM_FEATURES),
            batch_size=512,
            lr=2e-3,
            **TOY_FM_TIMES,
            **common,
        )
    cnf = {"cnf_solver": "rk4", "cnf_steps": 8, "cnf_jitter": True}
    if digits:  # Hutchinson with one Rademacher probe per sample, as FFJORD; 4 rk4 steps
        cnf |= {"cnf_divergence": "hutchinson", "cnf_probes": 1, "cnf_steps": 4}
        return TrainConfig(
            model=ModelConfig(width=256, depth=3, time_max_freq=freq),
            batch_size=128,
            lr=1e-3,
            **cnf,
            **common,
        )
    cnf |= {"cnf_divergence": "exact"}
    return TrainConfig(
        model=ModelConfig(width=128, depth=3, time_max_freq=freq),
        batch_size=256,
        lr=2e-3,
        **cnf,
        **common,
    )


def nfe_per_step(cfg) -> int:
    """Velocity evaluations per training step: 1 for flow matching, the solve's for a CNF."""
    from flowmatch.solvers import SOLVERS

    if cfg.method == "fm":
        return 1
    return SOLVERS[cfg.cnf_solver].stages * cfg.cnf_steps


# -- one training-and-evaluation job, run in its own process ------------------------------------
def run_job(*job) -> dict:
    """Train and evaluate one run (the arguments of :func:`_run_job`); a failure becomes a row
    with its error, not a crash."""
    dataset, method, _, _, _, freq = job[:6]
    try:
        return _run_job(*job)
    except Exception as exc:  # one broken run must not lose the others' results
        return {"dataset": dataset, "method": method, "freq": freq, "error": repr(exc)}


def _run_job(
    dataset: str,
    method: str,
    device: str,
    budget: float,
    root: str,
    freq: float,
    logit: float,
    dequant_samples: int,
):
    """Calibrate the step time, train for ``budget`` seconds' worth of steps, then evaluate."""
    torch.set_num_threads(1)
    from flowmatch import train
    from flowmatch.training import resume

    cfg = make_config(dataset, method, device, freq, logit)
    work = Path(root) / f"{dataset}-{method}-{freq:g}"
    # calibration: the step time after a short warm-up, in a throwaway run
    calib = dataclasses.replace(cfg, steps=10**6)
    warm = 10 if method == "cnf" else 50
    train(calib, work / "calibrate", stop_after=warm)
    probe = resume(work / "calibrate", stop_after=2 * warm)
    seconds_per_step = probe.seconds / (2 * warm)
    shutil.rmtree(work / "calibrate")
    cfg = dataclasses.replace(cfg, steps=max(4 * warm, int(budget / seconds_per_step)))

    run = work / "run"
    if dataset == "digits":
        train_seconds, best = _train_with_validation(cfg, run)
    else:
        result = train(cfg, run)
        train_seconds, best = result.seconds, None
    row = {
        "dataset": dataset,
        "method": method,
        "freq": freq,
        "logit": cfg.logit,
        "device": device,
        "steps": cfg.steps,
        "best_step": best,
        "train_s": train_seconds,
        "nfe_per_step": nfe_per_step(cfg),
        "params": None,
    }
    row.update(_evaluate(run, dataset, device, dequant_samples))
    return row


def _train_with_validation(cfg, run: Path, chunks: int = 10) -> tuple[float, int]:
    """Train in chunks; keep the checkpoint with the lowest validation NLL in run/."""
    import flowmatch
    from flowmatch.data import get_dataset
    from flowmatch.training import resume, train

    val = get_dataset("digits").validation(None, torch.Generator().manual_seed(99))
    chunk = max(1, cfg.steps // chunks)
    result = train(cfg, run, stop_after=chunk)
    seconds, best, best_step = result.seconds, math.inf, 0
    while True:
        flow = flowmatch.load(run, device=cfg.device)
        nll = (
            -flow.log_prob(
                val.to(flow.device), solver="rk4", steps=16, divergence="hutchinson", probes=4
            )
            .mean()
            .item()
        )
        if nll < best:
            best, best_step = nll, result.step
            shutil.copy(run / "checkpoint.safetensors", run / "best.safetensors")
        if result.complete:
            break
        result = resume(run, stop_after=chunk)
        seconds += result.seconds
    shutil.copy(run / "best.safetensors", run / "checkpoint.safetensors")
    return seconds, best_step


def _evaluate(run: Path, dataset: str, device: str, dequant_samples: int = 1) -> dict:
    """Held-out NLL by the exact change of variables with dopri5.

    Digits are scored with one dequantization of each test image (the usual bound) and, from
    the same solve, with the mean density of ``dequant_samples`` of them (a tighter bound on
    the discrete NLL, :func:`flowmatch.likelihood.dequantized_log_prob`).
    """
    import flowmatch
    from flowmatch.data import get_dataset
    from flowmatch.likelihood import dequantized_log_prob, summarize_nll

    flow = flowmatch.load(run, device=device)
    data = get_dataset(dataset)
    g = torch.Generator().manual_seed(1234)
    q = data.quantization
    extra = {}
    start = time.perf_counter()
    if dataset == "digits":  # the 360 test images, dequantized K times with a fixed seed
        levels = data.held_out(None, g, dequantize=False).to(flow.device)
        solves = []

        def score(y: torch.Tensor) -> torch.Tensor:
            # exact: 64 vector-Jacobian products per evaluation, affordable for 360 images
            solves.append(flow.log_prob_with_stats(y, divergence="exact", **EVAL))
            return solves[-1].log_prob

        iw = dequantized_log_prob(
            score, levels, bin_width=q.bin_width, samples=dequant_samples, generator=g
        )
        r = solves[0]  # its first dequantization alone is the usual one-draw bound
        r = dataclasses.replace(
            r, log_prob=r.log_prob[: levels.shape[0]], stderr=r.stderr[: levels.shape[0]]
        )
        extra = {
            "dequant_samples": dequant_samples,
            "bits_per_dim_iw": summarize_nll(iw, flow.dim, bin_width=q.bin_width).bits_per_dim,
        }
    else:
        x = data.held_out(TOY_TEST_POINTS, g)
        r = flow.log_prob_with_stats(
            x.to(flow.device), batch_size=TOY_TEST_POINTS, divergence="exact", **EVAL
        )
    seconds = time.perf_counter() - start
    s = summarize_nll(r.log_prob, flow.dim, stderr=r.stderr, bin_width=q.bin_width if q else 1.0)
    return extra | {
        "test_points": s.n,
        "nll": s.nll,
        "nll_se": s.stderr,
        "hutchinson_se": s.estimator_stderr,
        "bits_per_dim": s.bits_per_dim,
        "bits_per_dim_se": s.bits_per_dim_stderr,
        "gap": s.nll - ENTROPY[dataset] if dataset in ENTROPY else None,
        "eval_nfe": r.nfe,
        "eval_s": seconds,
        "params": sum(p.numel() for p in flow.velocity.parameters()),
    }


def gaussian_digits_baseline() -> float:
    """Bits/dim of a full-covariance Gaussian fitted to dequantized training digits."""
    from flowmatch.data import get_dataset
    from flowmatch.likelihood import bits_per_dim

    ds = get_dataset("digits")
    train = ds.sample(200_000, torch.Generator().manual_seed(5)).double()
    test = ds.held_out(None, torch.Generator().manual_seed(1234)).double()
    mvn = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T))
    return bits_per_dim(mvn.log_prob(test), 64).mean().item()


# -- part 2: the speed of exact log-likelihood ---------------------------------------------------
def loop_log_prob(flow, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The textbook exact log-likelihood: Euler steps from t = 1 back to 0, with the divergence
    as a Python loop of one ``autograd.grad`` per output dimension."""
    from flowmatch.likelihood import standard_normal_log_prob

    z, acc, d, h = flow.standardize(x), torch.zeros(x.shape[0]), x.shape[1], -1.0 / steps
    for k in range(steps):
        t = torch.tensor(1.0 - k / steps)
        with torch.enable_grad():
            zr = z.detach().requires_grad_()
            v = flow.velocity(zr, t)
            div = sum(
                torch.autograd.grad(v[:, i].sum(), zr, retain_graph=i < d - 1)[0][:, i]
                for i in range(d)
            )
        z, acc = z + h * v.detach(), acc + h * div.detach()  # acc = int_1^t div
    return standard_normal_log_prob(z) + acc + flow.log_abs_det_standardize()


def _timed(fn) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    with torch.no_grad():
        out = fn()
    return out, time.perf_counter() - start


def _cheapest(run, candidates: tuple[int, ...], order: int) -> int | None:
    """The fewest steps whose mean error is <= ACCURACY: double until the bar is met, then try
    the step count that an error ~ steps^-order predicts from the last miss."""
    last = None
    for steps in candidates:
        err = run(steps)["mean_abs_err"]
        if err <= ACCURACY:
            if last is None:
                return steps
            guess = math.ceil(last[0] * (last[1] / ACCURACY) ** (1 / order) * 1.05)
            if last[0] < guess < steps and run(guess)["mean_abs_err"] <= ACCURACY:
                return guess
            return steps
        last = (steps, err)
    return None


def speed_test(
    root: str, freq: float, reference_device: str, reference_tol: float, n: int, train_steps: int
) -> list[dict]:
    """Time exact log p of n 2-D points: autograd loop + Euler against torch.func + rk4/dopri5."""
    try:
        return _speed_test(Path(root), freq, reference_device, reference_tol, n, train_steps)
    except Exception as exc:  # keep the other parts' results
        return [{"method": f"speed test failed: {exc!r}", "freq": freq, "error": repr(exc)}]


def _speed_test(
    root: Path, freq: float, reference_device: str, reference_tol: float, n: int, train_steps: int
) -> list[dict]:
    import flowmatch
    from flowmatch import ModelConfig, TrainConfig, train
    from flowmatch.data import get_dataset

    torch.set_num_threads(1)
    run = root / f"speed-model-{freq:g}"
    cfg = TrainConfig(
        data="moons",
        steps=train_steps,
        batch_size=512,
        model=ModelConfig(width=128, depth=3, time_max_freq=freq),
        threads=1,
        log_every=500,
        checkpoint_every=10**9,
    )
    train(cfg, run)
    flow = flowmatch.load(run)
    x = get_dataset("moons").held_out(n, torch.Generator().manual_seed(7))
    ref_flow = flowmatch.load(run, device=reference_device).double()
    start = time.perf_counter()
    ref = ref_flow.log_prob_with_stats(
        x.double().to(ref_flow.device),
        solver="dopri5",
        atol=reference_tol,
        rtol=reference_tol,
        divergence="exact",
    )
    ref_lp, ref_s = ref.log_prob.cpu(), time.perf_counter() - start
    rows = [
        {
            "method": f"reference: dopri5 {reference_tol:g}, float64",
            "device": reference_device,
            "freq": freq,
            "points": n,
            "nfe": ref.nfe,
            "seconds": ref_s,
            "mean_abs_err": 0.0,
            "mean_err": 0.0,
        }
    ]

    def record(name: str, nfe: int, lp: torch.Tensor, seconds: float) -> dict:
        err = lp.double() - ref_lp
        row = {
            "method": name,
            "freq": freq,
            "device": "cpu",
            "nfe": nfe,
            "seconds": seconds,
            "mean_abs_err": err.abs().mean().item(),
            "mean_err": err.mean().item(),
        }
        rows.append(row)
        print(
            f"  {name:<44} NFE {nfe:>5}  {seconds:8.2f}s  mean|err| {row['mean_abs_err']:.4f}",
            flush=True,
        )
        return row

    def loop(steps: int) -> dict:
        lp, s = _timed(lambda: loop_log_prob(flow, x, steps))
        return record(f"autograd loop, euler {steps}", steps, lp, s)

    def func(solver: str, steps: int) -> dict:
        r, s = _timed(lambda: flow.log_prob_with_stats(x, solver=solver, steps=steps))
        return record(f"torch.func, {solver} {steps}", r.nfe, r.log_prob, s)

    euler_steps = _cheapest(loop, (16, 32, 64, 128, 256, 512, 1024, 2048, 4096), order=1)
    if euler_steps is not None:  # the same Euler grid with the vectorized divergence
        func("euler", euler_steps)
    _cheapest(lambda steps: func("rk4", steps), (2, 4, 8, 16, 32, 64, 128), order=4)
    for tol in (1e-3, 1e-4, 1e-5):
        r, s = _timed(lambda tol=tol: flow.log_prob_with_stats(x, atol=tol, rtol=tol))
        if record(f"torch.func, dopri5 {tol:g}", r.nfe, r.log_prob, s)["mean_abs_err"] <= ACCURACY:
            break
    return rows


# -- tables --------------------------------------------------------------------------------------
def print_density_table(rows: list[dict], gaussian_bpd: float | None) -> None:
    print("\n### Test NLL (dopri5 1e-5; exact divergence unless noted)\n")
    print(
        "| dataset | method | time emb. max freq | test NLL (nats) | gap to entropy | bits/dim "
        "| train time | steps | NFE/step | eval NFE |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['dataset']} | {r['method']} | {r['freq']:g} | failed: {r['error']} |")
            continue
        gap = "" if r["gap"] is None else f"{r['gap']:+.3f}"
        bpd = ""
        if r["dataset"] == "digits":
            bpd = f"{r['bits_per_dim']:.3f} ± {r['bits_per_dim_se']:.3f}"
            if r["hutchinson_se"]:
                bpd += " (Hutchinson)"
            if r.get("dequant_samples", 1) > 1:
                bpd += f"; K={r['dequant_samples']}: {r['bits_per_dim_iw']:.3f}"
        steps = f"{r['steps']}" + (f" (best {r['best_step']})" if r["best_step"] else "")
        cells = [
            r["dataset"],
            r["method"] + (f", logit {r['logit']:g}" if r.get("logit") else ""),
            f"{r['freq']:g}",
            f"{r['nll']:.3f} ± {r['nll_se']:.3f}",
            gap,
            bpd,
            f"{r['train_s']:.0f} s ({r['device']})",
            steps,
            r["nfe_per_step"],
            r["eval_nfe"],
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if gaussian_bpd is not None:
        quoted = "; ".join(f"{k} {v}" for k, v in REFERENCE_BPD.items())
        print(
            f"\ndigits bits/dim: full-covariance Gaussian fitted here {gaussian_bpd:.3f}; {quoted}"
        )


def print_speed_table(rows: list[dict]) -> None:
    ok_rows = [r for r in rows if "error" not in r]
    for r in rows:
        if "error" in r:
            print(f"\nspeed test (time emb. max freq {r['freq']:g}) failed: {r['error']}")
    if not ok_rows:
        return
    n = ok_rows[0]["points"]
    print(f"\n### Exact log p of {n} 2-D points (one CPU thread; bar: mean |err| <= {ACCURACY})\n")
    print(
        "| time emb. max freq | method | NFE | seconds | mean abs err (nats) | meets bar "
        "| speedup |"
    )
    print("|---|---|---|---|---|---|---|")
    for freq in dict.fromkeys(r["freq"] for r in ok_rows):
        group = [r for r in ok_rows if r["freq"] == freq]
        # the baseline: the fastest autograd-loop setting that meets the bar
        loops = [r for r in group if r["method"].startswith("autograd")]
        met = [r for r in loops if r["mean_abs_err"] <= ACCURACY]
        base = min(met, key=lambda r: r["seconds"]) if met else None
        for r in group:
            ok = "yes" if r["mean_abs_err"] <= ACCURACY else "no"
            ok = "ref" if r["method"].startswith("reference") else ok
            speed = f"{base['seconds'] / r['seconds']:.1f}x" if base and ok == "yes" else ""
            cells = [f"{freq:g}", r["method"], r["nfe"], f"{r['seconds']:.2f}"]
            cells += [f"{r['mean_abs_err']:.4f}", ok, speed]
            print("| " + " | ".join(str(c) for c in cells) + " |")


def _progress(r: dict) -> str:
    """One line about a finished density run."""
    head = f"{r['dataset']} {r['method']} (time emb. max freq {r['freq']:g})"
    if "error" in r:
        return f"{head} failed: {r['error']}"
    bpd = f", {r['bits_per_dim']:.3f} bits/dim" if r["dataset"] == "digits" else ""
    return f"{head}: test NLL {r['nll']:.3f}{bpd}, {r['steps']} steps in {r['train_s']:.0f} s"


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per 2-D run")
    p.add_argument("--digits-budget", type=float, help="training seconds per digits run")
    p.add_argument(
        "--digits-logit", type=float, default=DIGITS_LOGIT, help="--logit of digits runs (0: off)"
    )
    p.add_argument(
        "--dequant-samples", type=int, default=8, help="dequantizations per test digit (K)"
    )
    p.add_argument("--datasets", default="checkerboard,8gaussians,moons,digits")
    p.add_argument("--methods", default="fm,cnf")
    p.add_argument("--fm-freqs", default="30", help="time embedding max frequencies of the fm runs")
    p.add_argument("--cnf-freq", type=float, default=30.0, help="... and of the cnf runs")
    p.add_argument("--jobs", type=int, default=2, help="processes side by side")
    p.add_argument("--device", default="cpu", help="device of the 2-D runs")
    p.add_argument("--digits-device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--speed-freqs", default="30", help="models of part 2 ('' skips it)")
    p.add_argument("--speed-points", type=int, default=10_000, help="points of part 2")
    p.add_argument("--speed-train-steps", type=int, default=4000, help="training of its models")
    p.add_argument(
        "--reference-tol", type=float, default=1e-9, help="dopri5 tol of part 2's reference"
    )
    p.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="also write every row as JSON here")
    p.add_argument("--tables", type=Path, help="only print the tables of an earlier --json")
    args = p.parse_args()
    if args.tables is not None:
        saved = json.loads(args.tables.read_text())
        print_density_table(saved["density"], saved["gaussian_digits_bpd"])
        print_speed_table(saved["speed"])
        return

    root = args.work or Path(tempfile.mkdtemp(prefix="bench-likelihood-"))
    root.mkdir(parents=True, exist_ok=True)
    datasets = [d for d in args.datasets.split(",") if d]  # "" runs no density job
    methods = [m for m in args.methods.split(",") if m]
    jobs = []
    for d in datasets:
        device = args.digits_device if d == "digits" else args.device
        for m in methods:
            for freq in _floats(args.fm_freqs) if m == "fm" else [args.cnf_freq]:
                budget = args.digits_budget if d == "digits" and args.digits_budget else args.budget
                job = (d, m, device, budget, str(root), freq, args.digits_logit)
                jobs.append((*job, args.dequant_samples))
    reference_device = "cuda" if torch.cuda.is_available() else "cpu"
    speed_jobs = [
        (str(root), freq, reference_device, args.reference_tol, args.speed_points,
         args.speed_train_steps)
        for freq in _floats(args.speed_freqs)
    ]  # fmt: skip
    print(
        f"{len(jobs)} runs ({sum(j[3] for j in jobs):.0f} s of training) and "
        f"{len(speed_jobs)} speed tests, {args.jobs} at a time, in {root}",
        flush=True,
    )
    gaussian = gaussian_digits_baseline() if "digits" in datasets else None
    rows: list[dict] = []
    speed: list[dict] = []

    def save() -> None:  # after every finished job, so an interrupted run keeps its rows
        if args.json is not None:
            record = {"density": rows, "gaussian_digits_bpd": gaussian, "speed": speed}
            args.json.write_text(json.dumps(record, indent=2))

    with mp.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        speed_async = [pool.apply_async(speed_test, j) for j in speed_jobs]  # longest first
        for job in [pool.apply_async(run_job, j) for j in jobs]:
            rows.append(job.get())
            print(f"done: {_progress(rows[-1])}", flush=True)
            save()
        for job in speed_async:
            speed.extend(job.get())
            save()
    print_density_table(rows, gaussian)
    print_speed_table(speed)


if __name__ == "__main__":
    main()
