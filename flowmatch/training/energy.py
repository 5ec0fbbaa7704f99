"""Fitting a planar flow to an unnormalized 2-D energy by reverse KL: ``fit_energy``."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from flowmatch.data.energies import Energy, get_energy
from flowmatch.errors import FlowmatchError, check_int
from flowmatch.flows import DiscreteFlowModel, planar_stack
from flowmatch.flows.variational import EnergyFitReport, evaluate_energy_fit, reverse_kl_loss
from flowmatch.storage import StorageError, os_error_reason, write_file
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    check_new_run_dir,
    save_checkpoint,
    write_run_record,
)
from flowmatch.training.config import TrainConfig
from flowmatch.training.optim import optimizer_step
from flowmatch.training.schedules import lr_factor

__all__ = ["ENERGY_REPORT_FILE", "EnergyFit", "fit_energy", "save_energy_fit"]

ENERGY_REPORT_FILE = "energy_fit.json"


@dataclass
class EnergyFit:
    """What :func:`fit_energy` did: the settings, the loss curve and the final report."""

    energy: Energy
    layers: int
    activation: str
    affine: bool
    steps: int
    batch_size: int
    lr: float
    anneal_steps: int
    seed: int
    seconds: float
    report: EnergyFitReport
    losses: list[float] = field(default_factory=list)
    log_every: int = 100


def fit_energy(
    energy: str | Energy | Callable[[Tensor], Tensor],
    *,
    layers: int = 32,
    activation: str = "tanh",
    affine: bool = True,
    steps: int = 5000,
    batch_size: int = 256,
    lr: float = 2e-3,
    anneal_steps: int | None = None,
    grad_clip: float = 10.0,
    seed: int = 0,
    box: tuple[float, float, float, float] | None = None,
    report_samples: int = 20_000,
    grid: int = 400,
    log_every: int = 100,
    threads: int = 0,
) -> tuple[DiscreteFlowModel, EnergyFit]:
    """Fit q = a stack of planar layers to p ∝ exp(-U) by minimizing E_q[log q + β U].

    The objective is the reverse KL up to the constant log Z (see
    :mod:`flowmatch.flows.variational`), estimated on ``batch_size`` fresh draws of q per
    step. U is confined to its box by a steep wall (:meth:`Energy.confined`), so targets that
    do not decay along an axis (U2-U4) are proper. As in Rezende & Mohamed, the inverse
    temperature β rises linearly from 0.01 to 1 over the first ``anneal_steps`` steps, which
    lets q spread over all modes before the energy's barriers form. Adam, a linear warm-up of
    100 steps and cosine decay to 5% of ``lr``.

    Args:
        energy: a name in ``ENERGIES`` ("U1"-"U4"), an :class:`Energy`, or a function
            U: (N, 2) -> (N,) written with torch operations.
        layers: K, the number of planar layers.
        activation: their gate h ("tanh" or "leaky_relu").
        affine: start the stack with a learnable diagonal Gaussian (elementwise affine layer).
        steps: optimizer steps.
        batch_size: draws of q per step.
        lr: peak learning rate.
        anneal_steps: steps of the β ramp (default: a quarter of ``steps``; 0 disables).
        grad_clip: clip the gradient norm to this (0 disables).
        seed: initialization and sampling seed; the fit is deterministic given it.
        box: the box of the target (z1 min, z1 max, z2 min, z2 max); the energy's by default.
        report_samples: draws of q for the final report.
        grid: resolution of the quadrature grid of the report.
        log_every: keep the mean loss every this many steps in ``EnergyFit.losses``.
        threads: CPU threads while fitting (0: one, the fastest for a flow this small);
            torch's setting is restored afterwards.

    Returns:
        The fitted flow (a :class:`DiscreteFlowModel` in the energy's units: sample, invert
        and log_prob work on it) and an :class:`EnergyFit` with the report.

    Example:
        >>> flow, fit = fit_energy("U2", layers=4, steps=20, grid=50, report_samples=500)
        >>> flow.sample(3, seed=0).shape, fit.report.box
        (torch.Size([3, 2]), (-4.0, 4.0, -4.0, 4.0))
        >>> print(fit.report.lines()[0])
        energy U2 on the box [-4, 4, -4, 4] (z1 min, z1 max, z2 min, z2 max)

    References:
        Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015).
    """
    target = get_energy(energy, box)
    for name, value in (("layers", layers), ("steps", steps), ("batch_size", batch_size)):
        check_int(value, name)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise FlowmatchError(f"lr must be a finite number > 0, got {lr!r}")
    anneal = check_int(steps // 4 if anneal_steps is None else anneal_steps, "anneal_steps", 0)
    if not grad_clip >= 0:
        raise FlowmatchError(f"grad_clip must be >= 0 (0 disables), got {grad_clip}")
    if report_samples < 2 or grid < 2:
        raise FlowmatchError(
            f"report_samples and grid must be >= 2, got {report_samples} and {grid}"
        )

    check_int(threads, "threads", 0)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads or 1)
    try:
        return _fit(target, layers, activation, affine, steps, batch_size, lr, anneal,
                    grad_clip, seed, report_samples, grid, log_every)  # fmt: skip
    finally:
        torch.set_num_threads(saved_threads)


def _fit(
    target: Energy,
    layers: int,
    activation: str,
    affine: bool,
    steps: int,
    batch_size: int,
    lr: float,
    anneal: int,
    grad_clip: float,
    seed: int,
    report_samples: int,
    grid: int,
    log_every: int,
) -> tuple[DiscreteFlowModel, EnergyFit]:
    with torch.random.fork_rng(devices=[]):  # seeded init, global RNG left untouched
        torch.manual_seed(seed)
        stack = planar_stack(2, layers, activation, affine=affine)
    flow = DiscreteFlowModel(stack, (2,), torch.zeros(2), torch.ones(2))
    params = list(flow.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses, running = [], 0.0
    t0 = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(step, steps, min(100, steps // 10), "cosine", 0.05)
        beta = 1.0 if step >= anneal else 0.01 + 0.99 * step / anneal
        loss = reverse_kl_loss(flow, _annealed(target, beta), batch_size, generator)
        optimizer_step(loss, params, opt, grad_clip)
        running += loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            losses.append(running / ((step % log_every) + 1))
            running = 0.0
            if not math.isfinite(losses[-1]):
                raise FlowmatchError(
                    f"the fit diverged (loss {losses[-1]} at step {step + 1}); lower lr"
                )
    seconds = time.perf_counter() - t0
    flow.eval()
    report = evaluate_energy_fit(
        flow,
        target,
        target.box,
        name=target.name,
        n=report_samples,
        grid=grid,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    fit = EnergyFit(
        energy=target,
        layers=layers,
        activation=activation,
        affine=affine,
        steps=steps,
        batch_size=batch_size,
        lr=float(lr),
        anneal_steps=anneal,
        seed=seed,
        seconds=seconds,
        report=report,
        losses=losses,
        log_every=log_every,
    )
    return flow, fit


def save_energy_fit(flow: DiscreteFlowModel, fit: EnergyFit, run_dir: str | Path) -> Path:
    """Write a fitted flow as a run folder that ``flowmatch.load`` and ``flowmatch sample``,
    ``invert`` and ``logprob`` read like any trained run.

    The folder holds config.json (a ``planar`` config whose data is ``energy:<name>``, plus
    the energy's name and box), checkpoint.safetensors (the weights, stored as both the raw
    and the EMA weights: the fit keeps no average, ``ema_decay`` is 0), metrics.jsonl (the
    loss curve) and energy_fit.json (the report).

    Args:
        flow: the flow returned by :func:`fit_energy`.
        fit: its :class:`EnergyFit`.
        run_dir: a new or empty folder.

    Returns:
        The folder.
    """
    run_dir = Path(run_dir)
    check_new_run_dir(run_dir)
    cfg = TrainConfig(
        data=f"energy:{fit.energy.name}",
        method="planar",
        layers=fit.layers,
        planar_activation=fit.activation,
        planar_affine=fit.affine,
        steps=fit.steps,
        batch_size=fit.batch_size,
        lr=fit.lr,
        ema_decay=0.0,
        seed=fit.seed,
        log_every=fit.log_every,
    )
    record = {
        "config": cfg.to_dict(),
        "data": {"shape": [2], "mean": [0.0, 0.0], "std": [1.0, 1.0]},
        "energy": {
            "name": fit.energy.name,
            "box": list(fit.energy.box),
            "objective": "reverse KL, E_q[log q + U]",
            "anneal_steps": fit.anneal_steps,
        },
    }
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = os_error_reason(exc, run_dir)
        raise StorageError(f"cannot create the run folder {run_dir}: {reason}") from None
    weights = flow.state_dict()
    tensors = {f"model.{k}": v for k, v in weights.items()}
    tensors |= {f"ema.{k}": v.clone() for k, v in weights.items()}
    last = fit.losses[-1] if fit.losses else None
    save_checkpoint(
        run_dir / CHECKPOINT_FILE, tensors, {"step": fit.steps, "ema_updates": 0, "loss": last}
    )
    rows = [
        {"step": min((i + 1) * fit.log_every, fit.steps), "loss": loss}
        for i, loss in enumerate(fit.losses)
    ]
    write_file(run_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows).encode())
    report = {**fit.report.to_dict(), "seconds": fit.seconds}
    write_file(run_dir / ENERGY_REPORT_FILE, json.dumps(report, indent=2).encode())
    write_run_record(run_dir, record)  # last: a folder with config.json is complete
    return run_dir


def _annealed(target: Energy, beta: float) -> Callable[[Tensor], Tensor]:
    """β U inside the box plus the full wall outside it: the box stays the domain while the
    energy's barriers are tempered."""
    return lambda x: target.confined(x) - (1.0 - beta) * target(x)
