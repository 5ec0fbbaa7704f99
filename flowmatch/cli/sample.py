"""``flowmatch sample``: draw samples (noise -> data), with conditions and guidance if asked."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.cli.common import (
    add_condition_flags,
    add_device_flags,
    add_run_dir,
    add_solver_flags,
    add_time_grid_flag,
    grid_kwargs,
    load_from_args,
    run_condition,
)
from flowmatch.cli.limits import check_finite_result, check_number, check_solve_memory
from flowmatch.cli.outputs import check_output, npy_bytes, write_outputs
from flowmatch.cli.parts import part_conditions, part_usage
from flowmatch.errors import FlowmatchError, check_int, check_seed

if TYPE_CHECKING:
    from torch import Tensor

    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["GRID_SUFFIXES", "add_parser", "grid_bytes", "run", "sample_condition"]

GRID_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``sample`` subparser."""
    p = sub.add_parser(name, help="draw samples (noise -> data)")
    add_run_dir(p)
    p.add_argument(
        "--n", type=int, help="number of samples (default: 1000, or 64 for a --grid alone)"
    )
    p.add_argument("--out", type=Path, help="new .npy file for the samples (never replaced)")
    p.add_argument(
        "--grid", type=Path, help="also (or only) write the samples as an image grid, a new file"
    )
    add_condition_flags(p)
    # midpoint with 10 steps (20 NFE) came within 1% of dopri5's W2 on the 2-D sets, at a
    # fifth of the 100 NFE of 50 steps (docs/benchmarks.md, "Defaults")
    add_solver_flags(p, steps=10)
    add_device_flags(p)
    add_time_grid_flag(p)
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: random)")


def run(args: argparse.Namespace) -> None:
    """Write the samples to ``--out`` and/or an image grid to ``--grid``; print the NFE.

    Both files are created only once the samples are known to be finite, and together: if one
    cannot be written, neither is left.
    """
    if args.out is None and args.grid is None:
        raise FlowmatchError("give --out FILE.npy for the samples, --grid FILE.png, or both")
    if args.out is not None:
        check_output(args.out, ".npy")
    if args.grid is not None:
        check_output(args.grid, *GRID_SUFFIXES, flag="--grid")
    n = args.n if args.n is not None else (1000 if args.out is not None else 64)
    check_int(n, "--n")
    check_int(args.solver_steps, "--solver-steps")
    check_seed(args.seed, optional=True)
    if args.guidance is not None:
        check_number(args.guidance, "--guidance")
    flow, info = load_from_args(args)
    if args.grid is not None and len(info.shape) != 3:
        raise FlowmatchError(
            f"--grid draws images, but this run's samples have shape {info.shape}; use --out"
        )
    n, extra, nrow = sample_condition(args, flow, info, n)
    steps = args.solver_steps if flow.integrates_ode else 0
    what = f"--n {n} samples of {info.dim} values"
    check_solve_memory(info, n, args.device, solver=args.solver, steps=steps, what=what)
    options = grid_kwargs(args, flow)
    sol = flow.trajectory(n, seed=args.seed, return_trajectory=False, **extra, **options)
    check_finite_result(
        sol.x,
        "the samples",
        "the run may have diverged (see its loss), or --guidance is too large",
    )
    how = f"{args.solver}, NFE {sol.nfe}" if flow.integrates_ode else f"{sol.nfe} layers"
    files = [] if args.out is None else [(args.out, npy_bytes(sol.x))]
    if args.grid is not None:
        files.append((args.grid, grid_bytes(sol.x, info, args.grid.suffix, nrow)))
    write_outputs(*files)
    if args.out is not None:
        print(f"wrote {n} samples to {args.out} ({how})")
    if args.grid is not None:
        print(f"wrote a grid of {n} samples to {args.grid} ({how})")


def sample_condition(
    args: argparse.Namespace, flow: Flow, info: RunInfo, n: int
) -> tuple[int, dict[str, Any], int | None]:
    """Turn ``--class`` / ``--cond`` / ``--prompt`` / ``--part`` / ``--guidance`` into sampling
    options.

    Returns:
        The number of samples (a ``--cond`` or ``--part`` file with several rows sets it when
        ``--n`` is not given; k prompts without ``--n`` for a grid alone take 8 samples each), the
        keyword arguments ``cond`` / ``guidance`` of ``flow.trajectory``, and the images per
        row of a grid (the class count for ``--class all``, the samples per prompt for
        several prompts, else None).
    """
    import torch

    from flowmatch.data import load_array

    spec = run_condition(info)
    label, cond_file, guidance = args.label, args.cond, args.guidance
    prompts, parts = getattr(args, "prompt", None), getattr(args, "part", None)
    if sum(x is not None for x in (label, cond_file, prompts, parts)) > 1:
        raise FlowmatchError("give one of --class, --cond, --prompt and --part")
    extra: dict[str, Any] = {}
    nrow = None
    if parts is not None:
        _check_kind("--part", "dict", spec, info)
        n, extra["cond"] = part_conditions(parts, spec, n, fixed=args.n is not None)
    elif prompts is not None:
        n, extra["cond"], nrow = _prompt_conditions(prompts, spec, info, args, n)
    elif label is not None:
        _check_kind("--class", "class", spec, info)
        if label == "all":
            extra["cond"] = torch.arange(n) % spec.size  # (n,): classes in turn
            nrow = spec.size
        else:
            extra["cond"] = _class_index(label, spec.names, spec.size)
    elif cond_file is not None:
        _check_kind("--cond", "vector", spec, info)
        c = load_array(cond_file)  # (m, d)
        if c.shape[0] > 1 and args.n is None:
            n = c.shape[0]
        extra["cond"] = c
    if guidance is not None:
        if "cond" not in extra:
            use = (
                part_usage(spec)
                if spec is not None and spec.kind == "dict"
                else "--class K or --cond FILE (or --prompt TEXT)"
            )
            raise FlowmatchError(f"--guidance steers towards a condition; give {use} too")
        if info.config.cond_drop <= 0:
            raise FlowmatchError(
                f"{info.run_dir} was trained with --cond-drop 0, so it never learned the "
                "unconditional field that guidance needs; retrain with --cond-drop 0.1"
            )
        extra["guidance"] = guidance
    if "cond" in extra:  # all checks (unknown class, wrong vector size) before any sampling
        extra["cond"] = flow.check_condition(extra["cond"], n)
    return n, extra, nrow


# condition kind -> what the runs of that kind are trained on, and the flag that samples them
_KIND_WORDS = {
    "class": ("class labels", "--class K"),
    "vector": ("condition vectors", "--cond FILE"),
    "text": ("captions (text prompts)", "--prompt TEXT"),
    "dict": ("named parts (e.g. an image and an instruction)", "--part NAME=VALUE"),
}


def _check_kind(flag: str, kind: str, spec, info: RunInfo) -> None:
    """Refuse ``flag`` (which gives conditions of ``kind``) for a run of another kind."""
    if spec is not None and spec.kind == kind:
        return
    if spec is None:
        why = "without conditions"
    else:
        what, use = _KIND_WORDS.get(spec.kind, (f"{spec.kind} conditions", ""))
        why = f"on {what}" + (f"; use {use}" if use else " (sample it from Python)")
    raise FlowmatchError(
        f"{flag} needs a run trained on {_KIND_WORDS[kind][0]}, but {info.run_dir} was "
        f"trained {why}"
    )


def _prompt_conditions(
    prompts: list[str], spec, info: RunInfo, args: argparse.Namespace, n: int
) -> tuple[int, list[str], int | None]:
    """n, one prompt per sample (each prompt for n / k samples in a row) and the grid's row."""
    _check_kind("--prompt", "text", spec, info)
    k = len(prompts)
    if args.n is None and args.out is None:
        n = 8 * k if k > 1 else n
    elif n % k:
        raise FlowmatchError(f"--n {n} does not split evenly between {k} prompts")
    per = n // k
    return n, [p for p in prompts for _ in range(per)], (per if k > 1 else None)


def _class_index(label: str, names: list[str], size: int) -> int:
    """The class of ``--class K``: a number (checked by the model) or a class name."""
    try:
        return int(label)
    except ValueError:
        index = {name.lower(): i for i, name in enumerate(names)}
        if label.lower() not in index:
            raise FlowmatchError(
                f"--class must be a class number 0..{size - 1}, a class name or 'all', "
                f"got {label!r}"
            ) from None
        return index[label.lower()]


def grid_bytes(x: Tensor, info: RunInfo, suffix: str, nrow: int | None) -> bytes:
    """Image samples (n, C, H, W) as the bytes of a grid picture (``suffix`` picks the format),
    clipped to the training data's range."""
    from flowmatch.viz import image_grid_bytes

    train = getattr(info.config.dataset(), "train_data", None)
    if train is not None:  # clip outliers so they do not wash out the grey levels
        x = x.clamp(float(train.min()), float(train.max()))
    return image_grid_bytes(x.cpu().numpy(), suffix, nrow=nrow)
