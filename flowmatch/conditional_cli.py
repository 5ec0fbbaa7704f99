"""Command-line plumbing of conditional sampling: --class, --cond, --guidance and --grid."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError

__all__ = [
    "check_grid_output",
    "evaluate_image_run",
    "run_condition",
    "sample_condition",
    "write_grid",
]


def run_condition(info):
    """The run's recorded :class:`~flowmatch.data.conditions.ConditionSpec`, or None."""
    from flowmatch.data.conditions import ConditionSpec

    record = info.record.get("data", {}).get("condition")
    return None if record is None else ConditionSpec.from_dict(record)


def sample_condition(args: argparse.Namespace, flow, info, n: int) -> tuple[int, dict, int | None]:
    """Turn --class / --cond / --guidance into sampling options.

    Returns:
        The number of samples (a --cond file with several rows sets it when --n is not
        given), the keyword arguments ``cond`` / ``guidance`` for ``sample_trajectory``, and
        the images per row of a grid (the class count for ``--class all``, else None).
    """
    from flowmatch.data import load_array

    spec = run_condition(info)
    label, cond_file, guidance = args.label, args.cond, args.guidance
    if label is not None and cond_file is not None:
        raise FlowmatchError("give --class or --cond, not both")
    extra: dict = {}
    nrow = None
    if label is not None:
        if spec is None or spec.kind != "class":
            raise FlowmatchError(
                f"--class needs a class-conditional run, but {info.run_dir} was trained "
                + ("without conditions" if spec is None else f"on {spec.kind} conditions")
                + ("" if spec is None else "; use --cond FILE")
            )
        if label == "all":
            extra["cond"] = torch.arange(n) % spec.size  # (n,): classes in turn
            nrow = spec.size
        else:
            try:
                k = int(label)
            except ValueError:
                names = {name.lower(): i for i, name in enumerate(spec.names)}
                if label.lower() not in names:
                    raise FlowmatchError(
                        f"--class must be a class number 0..{spec.size - 1}, a class name or "
                        f"'all', got {label!r}"
                    ) from None
                k = names[label.lower()]
            extra["cond"] = k
    elif cond_file is not None:
        if spec is None or spec.kind != "vector":
            raise FlowmatchError(
                f"--cond needs a run trained on condition vectors, but {info.run_dir} was "
                + ("trained without conditions" if spec is None else "trained on class labels")
                + ("" if spec is None else "; use --class K")
            )
        c = load_array(cond_file)  # (m, d)
        if c.shape[0] > 1 and args.n is None:
            n = c.shape[0]
        extra["cond"] = c
    if guidance is not None:
        if "cond" not in extra:
            raise FlowmatchError(
                "--guidance steers towards a condition; give --class K or --cond FILE too"
            )
        if info.config.cond_drop <= 0:
            raise FlowmatchError(
                f"{info.run_dir} was trained with --cond-drop 0, so it never learned the "
                "unconditional field that guidance needs; retrain with --cond-drop 0.1"
            )
        extra["guidance"] = guidance
    if "cond" in extra:  # all checks (unknown class, wrong vector size) before any sampling
        extra["cond"] = flow.check_condition(extra["cond"], n)
    return n, extra, nrow


def check_grid_output(path: Path) -> None:
    """Refuse a grid path that exists, lacks its folder, or is not an image format."""
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise FlowmatchError(f"--grid must end in .png (or .jpg), got {path}")
    if path.exists():
        raise FlowmatchError(f"{path} already exists; remove it or choose another --grid")
    if not path.parent.is_dir():
        raise FlowmatchError(f"folder {path.parent} does not exist; create it first")


def write_grid(x: Tensor, info, path: Path, nrow: int | None) -> Path:
    """Save image samples (n, C, H, W) as a grid, clipped to the training data's range."""
    from flowmatch.data import get_dataset
    from flowmatch.viz import save_image_grid

    if x.ndim != 4:
        raise FlowmatchError(
            f"--grid draws images, but this run's samples have shape {tuple(x.shape[1:])}; "
            "use --out"
        )
    train = getattr(get_dataset(info.config.data), "train_data", None)
    if train is not None:  # clip outliers so they do not wash out the grey levels
        x = x.clamp(float(train.min()), float(train.max()))
    return save_image_grid(x.cpu().numpy(), path, nrow=nrow)


def evaluate_image_run(flow, info, args: argparse.Namespace) -> list[str]:
    """The ``eval-images`` table: real-data rows, then one row per guidance scale."""
    from flowmatch.data import get_dataset
    from flowmatch.data.images import ImageDataset
    from flowmatch.evaluation.classifier import reference_classifier
    from flowmatch.evaluation.images import evaluate_class_conditional, real_data_quality
    from flowmatch.models import check_guidance

    spec = run_condition(info)
    dataset = get_dataset(info.config.data)
    if spec is None or spec.kind != "class" or not isinstance(dataset, ImageDataset):
        raise FlowmatchError(
            f"eval-images scores class-conditional image runs (digits-images, fashion-mnist); "
            f"{info.run_dir} was trained on {info.config.data}; use flowmatch eval"
        )
    scales = tuple(check_guidance(w) for w in args.guidance)
    if any(w != 1.0 for w in scales) and info.config.cond_drop <= 0:
        raise FlowmatchError(
            f"{info.run_dir} was trained with --cond-drop 0, so guidance w != 1 is undefined"
        )
    net = reference_classifier(dataset, device=args.device)
    rows = list(real_data_quality(dataset, net, args.n, seed=args.seed + 1))
    rows += evaluate_class_conditional(
        flow, dataset, net, guidance_scales=scales, settings=((args.solver, args.steps),),
        n=args.n, seed=args.seed,
    )  # fmt: skip
    lines = [
        f"run {info.run_dir} (step {info.step}), {dataset.name}",
        f"{'setting':<28}{'NFE':>5}{'accuracy':>10}{'Fréchet':>10}{'n':>7}",
    ]
    for r in rows:
        fd = "-" if r.frechet != r.frechet else f"{r.frechet:.4f}"  # NaN: no distance
        nfe = "-" if r.nfe == 0 else str(r.nfe)
        lines.append(f"{r.label:<28}{nfe:>5}{r.accuracy:>10.3f}{fd:>10}{r.n:>7}")
    return lines
