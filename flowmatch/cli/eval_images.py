"""``flowmatch eval-images``: class accuracy and Fréchet distance of an image run's samples.

Both are measured by a reference classifier trained once on the real data (and cached). A
class-conditional run is sampled per class; a run trained on captions is sampled per class
with prompts that name the class, in the training phrasings and in held-out ones, scored
separately (``--phrasings``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from flowmatch.cli.common import (
    add_device_flags,
    add_run_dir,
    add_solver_flags,
    load_from_args,
    run_condition,
)
from flowmatch.cli.limits import check_number, check_solve_memory
from flowmatch.errors import FlowmatchError, check_int, check_seed

if TYPE_CHECKING:
    from flowmatch.flows.base import Flow
    from flowmatch.training.runs import RunInfo

__all__ = ["add_parser", "evaluate_image_run", "run"]


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``eval-images`` subparser."""
    from flowmatch.data.captions import PHRASINGS

    p = sub.add_parser(
        name,
        help="class accuracy and Fréchet distance of the samples of a class-conditional or "
        "prompted image run",
    )
    add_run_dir(p)
    p.add_argument(
        "--phrasings",
        nargs="+",
        choices=list(PHRASINGS),
        help="a run trained on captions (digits-captions, fashion-captions) is prompted with "
        "its classes' names in these sentence shapes, a row each: training (those of the "
        "training captions), held-out (shapes never trained on); default: both",
    )
    p.add_argument(
        "--guidance", type=float, nargs="+", default=[1.0, 2.0], help="scales w (default: 1 2)"
    )
    p.add_argument("--n", type=int, default=1000, help="samples per setting (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (0)")
    add_solver_flags(p, steps=10, fixed_grid=True, what="fixed-grid ODE solver")
    add_device_flags(p)


def run(args: argparse.Namespace) -> None:
    """Print the table of :func:`evaluate_image_run`."""
    check_int(args.n, "--n", minimum=2)
    check_int(args.solver_steps, "--solver-steps")
    check_seed(args.seed, optional=True)
    for w in args.guidance:
        check_number(w, "--guidance")
    flow, info = load_from_args(args)
    what = f"--n {args.n} samples of {info.dim} values"  # and as many real images beside them
    check_solve_memory(
        info,
        args.n,
        args.device,
        solver=args.solver,
        steps=args.solver_steps,
        states=2,
        what=what,
    )
    for line in evaluate_image_run(flow, info, args):
        print(line)


def evaluate_image_run(flow: Flow, info: RunInfo, args: argparse.Namespace) -> list[str]:
    """The ``eval-images`` table: real-data rows, then one row per guidance scale (and, for
    a prompted run, per set of phrasings)."""
    from flowmatch.data import get_dataset
    from flowmatch.data.captions import PHRASINGS, CaptionedImages
    from flowmatch.data.images import ImageDataset
    from flowmatch.evaluation.classifier import reference_classifier
    from flowmatch.evaluation.images import evaluate_class_conditional, real_data_quality
    from flowmatch.models import check_guidance

    spec = run_condition(info)
    dataset = info.config.dataset()
    prompted = spec is not None and spec.kind == "text" and isinstance(dataset, CaptionedImages)
    labelled = spec is not None and spec.kind == "class" and isinstance(dataset, ImageDataset)
    if not (prompted or labelled):
        raise FlowmatchError(
            f"eval-images scores class-conditional or prompted image runs (digits-images, "
            f"fashion-mnist, digits-captions, fashion-captions); {info.run_dir} was trained "
            f"on {info.config.data}; use flowmatch eval"
        )
    if args.phrasings is not None and not prompted:
        raise FlowmatchError(
            f"--phrasings picks the prompts of a run trained on captions, but {info.run_dir} "
            f"was trained on {info.config.data} with class labels; drop --phrasings"
        )
    scales = tuple(check_guidance(w) for w in args.guidance)
    if any(w != 1.0 for w in scales) and info.config.cond_drop <= 0:
        raise FlowmatchError(
            f"{info.run_dir} was trained with --cond-drop 0, so guidance w != 1 is undefined"
        )
    images = get_dataset(dataset.labelled) if prompted else dataset  # labelled by class
    net = reference_classifier(images, device=args.device)
    rows = list(real_data_quality(images, net, args.n, seed=args.seed + 1))
    phrasings = tuple(dict.fromkeys(args.phrasings or PHRASINGS)) if prompted else None
    rows += evaluate_class_conditional(
        flow,
        dataset,
        net,
        guidance_scales=scales,
        settings=((args.solver, args.solver_steps),),
        n=args.n,
        seed=args.seed,
        phrasings=phrasings,
    )
    width = max(28, 2 + max(len(r.label) for r in rows))
    lines = [f"run {info.run_dir} (step {info.step}), {dataset.name}"]
    if prompted:
        shapes = {"training": "sentence shapes", "held-out": "shapes never trained on"}
        said = ", ".join(f"{name} ({len(PHRASINGS[name])} {shapes[name]})" for name in phrasings)
        lines.append(f"prompts name each sample's class alone, phrased as: {said}")
    lines.append(f"{'setting':<{width}}{'NFE':>5}{'accuracy':>10}{'Fréchet':>10}{'n':>7}")
    for r in rows:
        fd = "-" if r.frechet != r.frechet else f"{r.frechet:.4f}"  # NaN: no distance
        nfe = "-" if r.nfe == 0 else str(r.nfe)
        lines.append(f"{r.label:<{width}}{nfe:>5}{r.accuracy:>10.3f}{fd:>10}{r.n:>7}")
    return lines
