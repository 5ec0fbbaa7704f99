"""The ``flowmatch`` command: parse, validate, and call training, sampling, evaluation, plots.

Every subcommand reports bad input as one line ``flowmatch: error: ...`` with exit status 2,
and writes its outputs atomically, so a failed command leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from flowmatch.cli_common import (
    check_output,
    grid_kwargs,
    load_from_args,
    save_npy,
    solver_kwargs,
)
from flowmatch.cli_parser import build_parser
from flowmatch.errors import FlowmatchError, check_points
from flowmatch.eval_cli import cmd_eval

__all__ = ["COMMANDS", "build_parser", "main"]


# -- subcommands --------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from flowmatch.models import ModelConfig
    from flowmatch.training import TrainConfig, make_reporter, resume, train

    given = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k not in ("command", "out", "resume", "stop_after", "func")
    }
    if args.stop_after is not None and args.stop_after < 1:
        raise FlowmatchError(f"--stop-after must be >= 1, got {args.stop_after}")
    if args.resume is not None:
        extra = set(given) - {"device"}
        if args.out is not None or extra:
            flags = sorted("--" + k.replace("_", "-") for k in extra) + (
                ["--out"] if args.out else []
            )
            raise FlowmatchError(
                f"--resume continues a run with its saved config; drop {', '.join(flags)}"
            )
        result = resume(
            args.resume,
            reporter=make_reporter(),
            stop_after=args.stop_after,
            device=given.get("device"),
        )
    else:
        if args.out is None:
            raise FlowmatchError("give --out RUN_DIR for a new run, or --resume RUN_DIR")
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        model_cfg = ModelConfig(**{k: v for k, v in given.items() if k in model_fields})
        cfg = TrainConfig(
            model=model_cfg, **{k: v for k, v in given.items() if k not in model_fields}
        )
        result = train(cfg, args.out, reporter=make_reporter(), stop_after=args.stop_after)
    state = "done" if result.complete else "stopped (resume with --resume)"
    loss = "n/a" if result.loss is None else f"{result.loss:.4f}"
    print(
        f"{state}: step {result.step}/{result.total_steps}, loss {loss}, "
        f"{result.seconds:.1f}s; run folder: {result.run_dir}"
    )


def cmd_sample(args: argparse.Namespace) -> None:
    from flowmatch.conditional_cli import check_grid_output, sample_condition, write_grid

    if args.out is None and args.grid is None:
        raise FlowmatchError("give --out FILE.npy for the samples, --grid FILE.png, or both")
    if args.out is not None:
        check_output(args.out, ".npy")
    if args.grid is not None:
        check_grid_output(args.grid)
    n = args.n if args.n is not None else (1000 if args.out is not None else 64)
    if n < 1:
        raise FlowmatchError(f"--n must be >= 1, got {n}")
    flow, info = load_from_args(args)
    n, extra, nrow = sample_condition(args, flow, info, n)
    sol = flow.sample_trajectory(
        n, seed=args.seed, return_trajectory=False, **extra, **grid_kwargs(args, flow)
    )
    how = f"{args.solver}, NFE {sol.nfe}"
    if getattr(flow, "discrete", False):
        how = f"{sol.nfe} layers"
    if args.out is not None:
        save_npy(args.out, sol.x)
        print(f"wrote {n} samples to {args.out} ({how})")
    if args.grid is not None:
        write_grid(sol.x, info, args.grid, nrow)
        print(f"wrote a grid of {n} samples to {args.grid} ({how})")


def cmd_invert(args: argparse.Namespace) -> None:
    from flowmatch.data import load_array

    check_output(args.out, ".npy")
    flow, info = load_from_args(args)
    x = load_array(args.data)
    check_points(x, str(args.data), dim=info.dim)
    z = flow.invert(x, **grid_kwargs(args, flow, backward=True))
    save_npy(args.out, z)
    print(f"wrote the noise of {x.shape[0]} points to {args.out}")


def cmd_logprob(args: argparse.Namespace) -> None:
    from flowmatch.likelihood_cli import run_logprob

    run_logprob(args)


def cmd_plot(args: argparse.Namespace) -> None:
    from flowmatch.viz.run_figures import write_run_figures

    flow, info = load_from_args(args)
    out = args.out or (info.run_dir / "plots")
    out.mkdir(parents=True, exist_ok=True)
    paths = write_run_figures(flow, info, out, n=args.n, seed=args.seed, **solver_kwargs(args))
    for path in paths:
        print(path)


def cmd_fit_energy(args: argparse.Namespace) -> None:
    from flowmatch.training.checkpoint import check_new_run_dir
    from flowmatch.training.energy import fit_energy, save_energy_fit
    from flowmatch.viz.energy import write_energy_fit_figure

    check_new_run_dir(args.out)  # before minutes of fitting, not after
    print(f"fitting {args.layers} planar layers to {args.energy} by reverse KL, {args.steps} steps")
    flow, fit = fit_energy(
        args.energy,
        layers=args.layers,
        activation=args.planar_activation,
        affine=args.planar_affine,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        anneal_steps=args.anneal_steps,
        seed=args.seed,
        box=None if args.box is None else tuple(args.box),
        report_samples=args.n,
        grid=args.grid,
    )
    save_energy_fit(flow, fit, args.out)
    figure = write_energy_fit_figure(flow, fit.energy, args.out / "density.png", seed=args.seed)
    print("\n".join(fit.report.lines()))
    print(f"fit in {fit.seconds:.1f}s; run folder: {args.out}; figure: {figure}")


def cmd_reflow(args: argparse.Namespace, method: str = "fm") -> None:
    from flowmatch.training import make_reporter, reflow

    overrides = {k: getattr(args, k) for k in ("lr", "batch_size", "seed")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.pairs < 1:
        raise FlowmatchError(f"--pairs must be >= 1, got {args.pairs}")
    if args.train_steps is not None and args.train_steps < 1:
        raise FlowmatchError(f"--train-steps must be >= 1, got {args.train_steps}")
    print(f"making {args.pairs} pairs with {args.solver} from {args.run}")
    r = reflow(
        args.run,
        args.out,
        n_pairs=args.pairs,
        seed=args.pair_seed,
        solver=args.solver,
        steps=args.steps,
        method=method,
        distill_steps=getattr(args, "distill_steps", 1),
        train_steps=args.train_steps,
        init=args.init,
        pairs_file=args.pairs_file,
        ema=not args.raw_weights,
        overrides=overrides,
        reporter=make_reporter(),
    )
    made = "reused" if r.reused_pairs else f"made in {r.pairs_seconds:.1f}s (NFE {r.pairs_nfe})"
    print(f"pairs {made}: {r.pairs_file}")
    t = r.train
    loss = "n/a" if t.loss is None else f"{t.loss:.4f}"
    print(
        f"done: step {t.step}/{t.total_steps}, loss {loss}, {t.seconds:.1f}s; "
        f"run folder: {t.run_dir}"
    )


def cmd_distill(args: argparse.Namespace) -> None:
    cmd_reflow(args, method="distill")


def cmd_eval_images(args: argparse.Namespace) -> None:
    from flowmatch.conditional_cli import evaluate_image_run

    if args.n < 2:
        raise FlowmatchError(f"--n must be >= 2, got {args.n}")
    flow, info = load_from_args(args)
    for line in evaluate_image_run(flow, info, args):
        print(line)


def cmd_demo(args: argparse.Namespace) -> None:
    from flowmatch.data import TOY_DATASETS

    if args.data not in TOY_DATASETS:
        raise FlowmatchError(
            f"demo takes a built-in 2-D set; choose one of: {', '.join(TOY_DATASETS)}"
        )
    out = args.out or Path("runs") / f"demo-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"training flow matching on '{args.data}' for {args.steps} steps into {out}")
    _run(["train", "--data", args.data, "--steps", str(args.steps), "--out", str(out)])
    print("\nevaluating against 2000 fresh draws of the data:")
    _run(["eval", str(out), "--json", str(out / "eval.json")])
    print("\nfigures:")
    _run(["plot", str(out)])
    print(f"\ndone: run folder {out}")


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "invert": cmd_invert,
    "eval": cmd_eval,
    "logprob": cmd_logprob,
    "plot": cmd_plot,
    "fit-energy": cmd_fit_energy,
    "reflow": cmd_reflow,
    "distill": cmd_distill,
    "demo": cmd_demo,
    "eval-images": cmd_eval_images,
}


def _run(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowmatch`` command; returns the exit status."""
    from flowmatch.training import TrainingInterrupted

    try:
        _run(sys.argv[1:] if argv is None else argv)
    except TrainingInterrupted as exc:
        print(f"flowmatch: {exc}", file=sys.stderr)
        return 130
    except FlowmatchError as exc:
        print(f"flowmatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowmatch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
