"""Reflow (rectified flow) and distillation: retrain on the pairs a trained flow makes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from flowmatch.errors import (
    FlowmatchError,
    check_device,
    check_int,
    check_memory,
    check_seed,
    lookup,
)
from flowmatch.flows.continuous import FlowModel
from flowmatch.solvers import SOLVERS
from flowmatch.storage import StorageError, os_error_reason
from flowmatch.training.build import apply_threads, check_size
from flowmatch.training.checkpoint import check_new_run_dir
from flowmatch.training.config import TrainConfig
from flowmatch.training.loop import TrainResult
from flowmatch.training.pairs import load_pairs, save_pairs
from flowmatch.training.progress import Reporter
from flowmatch.training.start import train

__all__ = ["ReflowResult", "default_pairs_file", "generate_pairs", "reflow"]

PAIR_BATCH = 4096
"""Pairs solved per ODE solve; an adaptive solver's steps depend on the batch, so it is fixed."""


@torch.no_grad()
def generate_pairs(
    flow: FlowModel,
    n: int,
    *,
    seed: int = 0,
    solver: str = "dopri5",
    steps: int = 100,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> tuple[Tensor, Tensor, int]:
    """Draw x0 ~ p0 and solve x1 = ODE(x0) with a trained flow; deterministic given the seed.

    The n source points are drawn from ``torch.Generator().manual_seed(seed)`` and solved in
    batches of :data:`PAIR_BATCH`.

    Args:
        flow: the teacher.
        n: the number of pairs, >= 1.
        seed: the seed of the source draws.
        solver: an ODE solver name (an accurate one: the pairs' error becomes the student's).
        steps: steps of a fixed-grid solver.
        atol: absolute tolerance of an adaptive solver.
        rtol: relative tolerance of an adaptive solver.

    Returns:
        ``(x0, x1, nfe)``: (n, ...) source points in the source's units, (n, ...) their images
        in data units, both float32 on the CPU, and the velocity evaluations spent.
    """
    if not isinstance(flow, FlowModel):
        raise FlowmatchError(
            f"reflow needs a flow-matching teacher (a FlowModel), got {type(flow).__name__}"
        )
    check_int(n, "the number of pairs")
    # z0, the solver's copies of a batch, the solved parts, z1 and the two float32 outputs
    check_memory(4 * n * flow.dim * 4, f"{n} pairs of {flow.dim} features", flow.device)
    z0 = flow.noise(n, torch.Generator().manual_seed(seed))  # (n, ...) standardized
    parts, nfe = [], 0
    for chunk in z0.split(PAIR_BATCH):
        sol = flow.transport(chunk, 0.0, 1.0, solver=solver, steps=steps, atol=atol, rtol=rtol)
        parts.append(sol.x)
        nfe += sol.nfe
    z1 = torch.cat(parts)  # (n, ...)
    x0 = flow.source.unstandardize(z0).float().cpu()
    return x0, flow.unstandardize(z1).float().cpu(), nfe


def default_pairs_file(
    teacher: Path, step: int, n: int, seed: int, solver: str, steps: int, ema: bool
) -> Path:
    """Where the pairs of a teacher live by default: ``TEACHER/pairs/<settings>.npz``."""
    grid = "" if SOLVERS[solver].adaptive else f"-{steps}"
    weights = "" if ema else "-raw"
    return Path(teacher) / "pairs" / f"step{step}-n{n}-seed{seed}-{solver}{grid}{weights}.npz"


@dataclass
class ReflowResult:
    """What :func:`reflow` did: the pairs file, the seconds spent making it, the training."""

    pairs_file: Path
    pairs_seconds: float
    pairs_nfe: int
    reused_pairs: bool
    train: TrainResult


def reflow(
    teacher: str | Path,
    out: str | Path,
    *,
    n_pairs: int = 10_000,
    seed: int = 0,
    solver: str = "dopri5",
    steps: int = 100,
    method: str = "fm",
    distill_steps: int = 1,
    train_steps: int | None = None,
    init: bool = True,
    pairs_file: str | Path | None = None,
    ema: bool = True,
    overrides: dict | None = None,
    reporter: Reporter | None = None,
) -> ReflowResult:
    """Make teacher pairs and train a new run on them: reflow (``method="fm"``) or distill.

    A trained flow defines a deterministic coupling of its source and data: x0 ~ p0 and
    x1 = ODE(x0), the end of its trajectory. Training a new flow on these fixed pairs
    (reflow) keeps the marginals and, since the straight interpolations of a deterministic
    coupling cross less than those of the independent one, gives straighter trajectories;
    repeating it (a reflow of a reflow) straightens them further. Distillation instead fits a
    student whose one- or two-step Euler solve maps x0 to x1 directly. The pairs depend only
    on the teacher's weights, the seed, the solver and the batch size, so they are
    reproducible; they are saved as a pairs file that the new run references.

    The new run copies the teacher's config with ``pairs`` set to the pairs file, the
    independent coupling (the pairs are the coupling), ``init_from`` the teacher (unless
    ``init=False``) and any ``overrides``. An existing pairs file made with the same settings
    is reused, since the pairs are a deterministic function of them.

    Args:
        teacher: the trained run folder.
        out: the new run folder (must not exist or be empty).
        n_pairs: how many (x0, x1) pairs to make.
        seed: the seed of the pairs' source draws.
        solver: the ODE solver that makes the pairs.
        steps: its steps, if fixed-grid.
        method: ``"fm"`` (reflow) or ``"distill"``.
        distill_steps: Euler steps of the distilled student (1 or 2 typically).
        train_steps: optimizer steps of the new run (default: the teacher's).
        init: start from the teacher's weights.
        pairs_file: where to write (or find) the pairs (default: ``TEACHER/pairs/...``).
        ema: make the pairs with the teacher's EMA weights (else the raw ones).
        overrides: further :class:`~flowmatch.training.TrainConfig` fields of the new run.
        reporter: progress display of the training.

    Returns:
        The :class:`ReflowResult`.

    Example:
        >>> import flowmatch  # doctest: +SKIP
        >>> r = reflow("runs/moons", "runs/moons-reflow", n_pairs=20_000)  # doctest: +SKIP
        >>> flowmatch.load(r.train.run_dir).sample(100, solver="euler", steps=2)  # doctest: +SKIP

    References:
        Liu et al., "Flow Straight and Fast: Learning to Generate and Transfer Data with
        Rectified Flow" (2023); Liu et al., "InstaFlow: One Step is Enough for High-Quality
        Diffusion-Based Text-to-Image Generation" (2024).
    """
    from flowmatch.training.runs import load_run

    if method not in ("fm", "distill"):
        raise FlowmatchError(f"reflow trains with method 'fm' or 'distill', got {method!r}")
    check_int(n_pairs, "the number of pairs")
    check_int(steps, "the solver's steps")
    check_seed(seed, "the pairs' seed")
    lookup(SOLVERS, solver, "solver")
    if pairs_file is not None and Path(pairs_file).suffix != ".npz":
        raise FlowmatchError(
            f"a pairs file is an .npz archive (x0 and x1), got {pairs_file}; name it ...npz"
        )
    teacher, out = Path(teacher), Path(out)
    check_new_run_dir(out)  # before minutes of solving, not after
    flow, info = load_run(teacher, ema=ema)
    apply_threads(info.config, flow, torch.device("cpu"))  # one thread for small models
    path = (
        Path(pairs_file)
        if pairs_file is not None
        else default_pairs_file(teacher, info.step, n_pairs, seed, solver, steps, ema)
    )
    # the new run's config, checked before any pair is written into the teacher's folder
    cfg = _student_config(info.config, path, teacher, method, distill_steps, train_steps, init)
    cfg = _with_overrides(cfg, overrides)
    check_size(cfg, info.record["data"], check_device(cfg.device))
    meta = {
        "teacher": str(teacher.resolve()),
        "teacher_step": info.step,
        "n": n_pairs,
        "seed": seed,
        "solver": solver,
        "steps": None if SOLVERS[solver].adaptive else steps,
        "ema": ema,
    }
    t0 = time.perf_counter()
    reused, nfe = path.exists(), 0
    if reused:
        found = load_pairs(path).meta
        if {k: found.get(k) for k in meta} != meta:
            raise FlowmatchError(
                f"{path} holds pairs made with other settings; remove it or pass another pairs file"
            )
    else:
        x0, x1, nfe = generate_pairs(flow, n_pairs, seed=seed, solver=solver, steps=steps)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = os_error_reason(exc, path.parent)
            raise StorageError(f"cannot create {path.parent} for the pairs: {reason}") from None
        save_pairs(path, x0, x1, meta)
    seconds = time.perf_counter() - t0
    result = train(cfg, out, reporter=reporter)
    return ReflowResult(path, seconds, nfe, reused, result)


def _student_config(
    teacher_cfg: TrainConfig,
    pairs: Path,
    teacher: Path,
    method: str,
    distill_steps: int,
    train_steps: int | None,
    init: bool,
) -> TrainConfig:
    """The teacher's config with the pairs as the coupling, and the student's settings.

    The teacher's preset name is dropped: the student's values are no longer the preset's
    (the record keeps the pairs file the teacher made, and the teacher in ``init_from``).
    """
    fields = {
        "preset": "",
        "method": method,
        "pairs": str(pairs.resolve()),
        "coupling": "independent",
        "init_from": str(teacher.resolve()) if init else "",
        "distill_steps": distill_steps,
    }
    if train_steps is not None:
        fields["steps"] = train_steps
    return dataclasses.replace(teacher_cfg, **fields)


def _with_overrides(cfg: TrainConfig, overrides: dict | None) -> TrainConfig:
    """``cfg`` with ``overrides`` (TrainConfig fields) applied, validated."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise FlowmatchError(f"unknown training options {unknown}; use TrainConfig's fields")
    cfg = dataclasses.replace(cfg, **(overrides or {}))
    cfg.validate()
    return cfg
