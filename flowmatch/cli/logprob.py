"""``flowmatch logprob``: the mean NLL of data under a trained run, with bits per dimension.

The points are a data file or a built-in data set (its held-out split). For discrete-valued
data (a run trained on a quantized set such as ``digits``), points on the value grid are
uniformly dequantized with the seeded noise before their density is evaluated, and bits per
dimension use the grid's bin width (see :mod:`flowmatch.likelihood.nll`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.cli.common import (
    add_device_flags,
    add_run_dir,
    add_solver_flags,
    load_from_args,
    solver_kwargs,
)
from flowmatch.cli.limits import check_solve_memory
from flowmatch.cli.outputs import check_output, save_npy
from flowmatch.errors import FlowmatchError, check_int, check_memory, check_points, check_seed

if TYPE_CHECKING:
    import torch

    from flowmatch.training.runs import RunInfo

__all__ = ["DEFAULT_BATCH", "add_parser", "run"]

DEFAULT_BATCH = 2048  # points per solve: bounds memory (exact divergence in 64-D is D x wider)


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``logprob`` subparser."""
    from flowmatch.likelihood import DIVERGENCES, LOG_PROB_EXACT_MAX_DIM, PROBES
    from flowmatch.solvers import ERROR_NORMS

    p = sub.add_parser(name, help="log-density of data: mean NLL ± stderr and bits/dim")
    add_run_dir(p)
    p.add_argument(
        "--data",
        required=True,
        help="a .npy/.npz/.csv file of points (N, D), or a built-in data set (its held-out split)",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="points of a built-in's held-out split (default: all; 2000 draws of a 2-D set)",
    )
    p.add_argument("--out", type=Path, help="write the per-point log p (N,) in nats to a .npy")
    p.add_argument(
        "--divergence",
        choices=list(DIVERGENCES),
        default="auto",
        help="exact trace, Hutchinson's estimate, or auto: exact for "
        f"D <= {LOG_PROB_EXACT_MAX_DIM} (default: auto)",
    )
    p.add_argument(
        "--divergence-nodes",
        type=int,
        default=0,
        metavar="N",
        help="evaluate the divergence only at N Gauss-Legendre nodes per step of a fixed-grid "
        "--solver, which then integrates x alone; cheaper where D is large (default 0: the "
        "divergence at every stage)",
    )
    p.add_argument(
        "--probes", type=int, default=4, help="Hutchinson probes per point, >= 2 for a stderr"
    )
    p.add_argument("--probe", choices=list(PROBES), default="rademacher", help="probe law")
    p.add_argument("--seed", type=int, default=0, help="seed of probes and dequantization noise")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help="points per ODE solve (memory)"
    )
    p.add_argument(
        "--dequantize",
        choices=["auto", "yes", "no"],
        default="auto",
        help="add U[0, bin) noise to grid-valued points of a discrete data set "
        "(auto: when the run's data is discrete and every point lies on its grid)",
    )
    p.add_argument(
        "--dequant-samples",
        type=int,
        default=1,
        metavar="K",
        help="dequantize each grid point K times and score log of the mean density: a tighter "
        "bound on the discrete NLL (needs --divergence exact; default 1)",
    )
    add_solver_flags(p, default="dopri5")
    p.add_argument(
        "--error-norm",
        choices=list(ERROR_NORMS),
        default="sample",
        help="how an adaptive solver measures a step's error: sample (every point's x and "
        "log p meet the tolerance; default) or batch (RMS over the whole batch)",
    )
    add_device_flags(p)


def _points(
    args: argparse.Namespace, info: RunInfo, quantization: Any, g: torch.Generator
) -> tuple[torch.Tensor, str, Any]:
    """The points to score, a description, and the grid to dequantize them on (or None).

    A built-in set, or the run's own data file or images, gives its held-out part; another
    folder or ``.npz`` of images is scored whole on the 8-bit grid; another file, whole.
    """
    import torch

    from flowmatch.data import DATASETS, get_dataset, load_array
    from flowmatch.data.image_files import is_image_npz, load_image_files

    if args.n is not None:
        check_int(args.n, "--n")
    own = args.data not in DATASETS and _same_file(args.data, info.config.data)
    if args.data in DATASETS or own:
        dataset = info.config.dataset() if own else get_dataset(args.data)
        grid = dataset.quantization
        if grid is None:
            x = dataset.held_out(args.n, g)
        else:  # the grey levels; dequantized on their own grid by the caller
            x = dataset.held_out(args.n, g, dequantize=False)
        note = f"{x.shape[0]} held-out points of {args.data}"
        x = x.reshape(x.shape[0], -1)
        return check_points(x, args.data, dim=info.dim), note, grid
    if not Path(args.data).exists():
        raise FlowmatchError(
            f"--data {args.data!r} is neither a built-in data set ({', '.join(DATASETS)}) "
            "nor a file"
        )
    if args.n is not None:
        raise FlowmatchError("--n picks held-out points of the run's data; a file is used whole")
    if Path(args.data).is_dir() or is_image_npz(args.data):
        images = load_image_files(args.data)
        x = torch.cat([images.train_data, images.test_data]).reshape(-1, images.dim)
        note = f"{x.shape[0]} images of {args.data}"
        return check_points(x, str(args.data), dim=info.dim), note, images.quantization
    x = check_points(load_array(args.data), str(args.data), dim=info.dim)
    note = f"{x.shape[0]} points of {args.data}"
    if args.dequantize == "no":
        return x, note, None
    if quantization is None:
        if args.dequantize == "yes":
            raise FlowmatchError(
                f"--dequantize yes needs a run trained on discrete data; {info.config.data} "
                "is continuous"
            )
        return x, note, None
    on_grid = quantization.on_grid(x)
    if args.dequantize == "yes" and not on_grid:
        raise FlowmatchError(
            f"{args.data} has values off the grid of {quantization.levels} levels of width "
            f"{quantization.bin_width} from {quantization.low}; it is already continuous, "
            "so drop --dequantize yes"
        )
    return x, note, quantization if on_grid else None


def _same_file(a: str, b: str) -> bool:
    """Whether two data paths name the same file or folder."""
    return Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve()


def _check_memory(
    args: argparse.Namespace, flow: Any, info: RunInfo, method: str, n: int, what: str
) -> None:
    """Refuse ``n`` points, scored ``--batch-size`` at a time, that cannot fit in memory.

    Each point of a batch carries its divergence: D vectors for the exact trace, one per
    probe for Hutchinson's estimate; the points themselves, their noise and log p are kept.
    """
    batch = min(args.batch_size, n)
    width = info.dim if method == "exact" else args.probes
    steps = args.solver_steps if flow.integrates_ode else 0
    what += f" of {info.dim} values, --batch-size {args.batch_size}"
    check_solve_memory(
        info,
        batch,
        args.device,
        solver=args.solver,
        steps=steps,
        states=width,
        extra=12 * n * info.dim,
        what=what,
    )


def run(args: argparse.Namespace) -> None:
    """Print the mean NLL with its standard error and bits/dim; optionally save log p."""
    import torch

    from flowmatch.data import DATASETS
    from flowmatch.likelihood import (
        LOG_PROB_EXACT_MAX_DIM,
        dequantized_log_prob,
        resolve_divergence,
        summarize_nll,
    )
    from flowmatch.solvers import SOLVERS

    if args.out is not None:
        check_output(args.out, ".npy")
    check_int(args.probes, "--probes")
    check_int(args.batch_size, "--batch-size")
    k = check_int(args.dequant_samples, "--dequant-samples")
    check_seed(args.seed, optional=True)
    nodes = check_int(args.divergence_nodes, "--divergence-nodes", minimum=0)
    if nodes and SOLVERS[args.solver].adaptive:
        fixed = ", ".join(name for name, spec in SOLVERS.items() if not spec.adaptive)
        raise FlowmatchError(
            f"--divergence-nodes needs a fixed-grid --solver ({fixed}), got the adaptive "
            f"{args.solver!r}"
        )
    # the nodes' rule is the eigenvalues of an N x N float64 matrix (a few copies of it)
    check_memory(3 * 8 * nodes * nodes, f"--divergence-nodes {nodes} (its Gauss-Legendre rule)")
    options = solver_kwargs(args) | {"error_norm": args.error_norm, "divergence_nodes": nodes}
    flow, info = load_from_args(args)
    method = resolve_divergence(args.divergence, info.dim, LOG_PROB_EXACT_MAX_DIM)
    if args.data in DATASETS and args.n is not None:
        check_int(args.n, "--n")
        _check_memory(args, flow, info, method, args.n, f"--n {args.n} points")
    quantization = info.config.dataset().quantization  # a user's image files have one too
    g = torch.Generator().manual_seed(args.seed)
    x, note, grid = _points(args, info, quantization, g)
    _check_memory(args, flow, info, method, x.shape[0], f"{x.shape[0]} points")
    if k > 1 and grid is None:
        raise FlowmatchError(
            "--dequant-samples needs grid-valued points of a discrete data set (e.g. digits); "
            f"{args.data} is scored as continuous"
        )
    if k > 1 and method != "exact" and flow.integrates_ode:
        raise FlowmatchError(
            "--dequant-samples K > 1 averages densities, which noisy Hutchinson estimates "
            "would bias; add --divergence exact"
        )
    nfe = 0

    def score(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        nonlocal nfe
        if not flow.integrates_ode:  # a stack of layers: exact log-det, no ODE options
            return flow.log_prob(y.to(flow.device)), torch.zeros(y.shape[0])
        r = flow.log_prob_with_stats(
            y.to(flow.device),
            divergence=args.divergence,
            probes=args.probes,
            probe=args.probe,
            generator=g,
            batch_size=args.batch_size,
            **options,
        )
        nfe += r.nfe
        return r.log_prob, r.stderr

    if grid is None:
        log_p, stderr = score(x)
    elif k == 1:  # one dequantization: the noise first, then any probes, from the seed
        log_p, stderr = score(grid.dequantize(x, g))
    else:
        log_p = dequantized_log_prob(
            lambda y: score(y)[0], x, bin_width=grid.bin_width, samples=k, generator=g
        )
        stderr = torch.zeros_like(log_p)
    if grid is not None:
        note += " (dequantized)" if k == 1 else f" (dequantized {k} times each)"
    if flow.integrates_ode:
        if method == "hutchinson":
            method += f" ({args.probes} {args.probe} probes per point)"
        how = f"{args.solver}, NFE {nfe}, divergence {method}"
        if nodes:
            how += f" at {nodes} Gauss-Legendre nodes per step"
    else:
        how = "exact log-det of the discrete flow"
    bin_width = 1.0 if quantization is None else quantization.bin_width
    s = summarize_nll(log_p, info.dim, stderr=stderr, bin_width=bin_width)
    print(f"run {info.run_dir} (step {info.step}), {note}")
    print(how)
    one = x.shape[0] == 1  # no spread over points to report
    line = (
        f"NLL {s.nll:.4f} nats (one point: no standard error)"
        if one
        else f"NLL {s.nll:.4f} ± {s.stderr:.4f} nats per point (mean ± standard error over points)"
    )
    if s.estimator_stderr is None:
        line += "; Hutchinson part unknown with 1 probe"
    elif s.estimator_stderr > 0:
        line += f"; Hutchinson part ± {s.estimator_stderr:.4f}"
    print(line)
    units = (
        "continuous data: differential NLL per feature"
        if quantization is None
        else f"dequantized, bin width {bin_width:g}: a bound on the discrete NLL"
        + ("" if k == 1 else f", tightened by the mean density of {k} dequantizations")
    )
    spread = "" if one else f" ± {s.bits_per_dim_stderr:.4f}"
    print(f"bits/dim {s.bits_per_dim:.4f}{spread} ({units})")
    if args.out is not None:
        save_npy(args.out, log_p)
        print(f"wrote log p of {x.shape[0]} points (nats) to {args.out}")
