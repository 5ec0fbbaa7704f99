"""``flowmatch train``: one flag per config field, a new run or ``--resume`` of an old one.

Each flag's help is the ``help`` metadata of its :class:`~flowmatch.training.TrainConfig` or
:class:`~flowmatch.models.ModelConfig` field, and the flags naming a registry entry take the
registry's names as choices, so ``--help`` lists exactly what exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from flowmatch.errors import FlowmatchError, check_int

__all__ = ["add_parser", "config_fields", "flag_name", "run"]


def config_fields() -> list[dataclasses.Field]:
    """The fields that ``train`` has a flag for: TrainConfig's (but ``model``), ModelConfig's.

    Fields marked ``flag: False`` (what training fills in from the data, such as a text
    condition's vocabulary) have none.
    """
    from flowmatch.models import ModelConfig
    from flowmatch.training.config import TrainConfig

    fields = [f for f in dataclasses.fields(TrainConfig) if f.name != "model"]
    fields += dataclasses.fields(ModelConfig)
    return [f for f in fields if f.metadata.get("flag", True)]


def flag_name(field_name: str) -> str:
    """The flag of a config field: ``batch_size`` -> ``--batch-size``, ``name`` -> ``--model``.

    Example:
        >>> flag_name("batch_size"), flag_name("name")
        ('--batch-size', '--model')
    """
    return "--model" if field_name == "name" else "--" + field_name.replace("_", "-")


def _choices() -> dict[str, list[str]]:
    """Config field -> the names of the registry it picks from."""
    from flowmatch.couplings import COUPLINGS
    from flowmatch.flows import PLANAR_ACTIVATIONS
    from flowmatch.likelihood import DIVERGENCES, PROBES
    from flowmatch.models import ACTIVATIONS, MODELS
    from flowmatch.paths import PATHS
    from flowmatch.solvers import SOLVERS
    from flowmatch.training.methods import METHODS
    from flowmatch.training.optim import OPTIMIZERS
    from flowmatch.training.precision import PRECISIONS
    from flowmatch.training.presets import PRESETS
    from flowmatch.training.schedules import LR_DECAYS, TIME_SAMPLERS

    return {
        "method": list(METHODS),
        "path": list(PATHS),
        "optimizer": list(OPTIMIZERS),
        "lr_decay": list(LR_DECAYS),
        "time_sampling": list(TIME_SAMPLERS),
        "name": list(MODELS),
        "activation": list(ACTIVATIONS),
        "planar_activation": list(PLANAR_ACTIVATIONS),
        "coupling": list(COUPLINGS),
        "cnf_solver": list(SOLVERS),
        "cnf_divergence": list(DIVERGENCES),
        "cnf_probe": list(PROBES),
        "precision": list(PRECISIONS),
        "preset": list(PRESETS),
    }


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per config field; defaults stay None so that we can tell which were given."""
    from flowmatch.data import DATASETS
    from flowmatch.training.presets import PRESETS

    choices = _choices()
    for f in config_fields():
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        help_text = f.metadata.get("help", f.name)
        if f.name in ("data", "source"):
            help_text += f" (built-ins: {', '.join(DATASETS)})"
        if f.name == "preset":
            help_text += "".join(f"; {k}: {p.summary}" for k, p in PRESETS.items())
        help_text += f" (default: {default})"
        if isinstance(default, bool):
            action = argparse.BooleanOptionalAction
            p.add_argument(flag_name(f.name), dest=f.name, action=action, help=help_text)
            continue
        kind = type(default)
        p.add_argument(
            flag_name(f.name),
            dest=f.name,
            type=kind,
            choices=choices.get(f.name),
            help=help_text,
            metavar=None if f.name in choices else kind.__name__.upper(),
        )


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``train`` subparser."""
    p = sub.add_parser(name, help="train a model (or --resume an interrupted run)")
    p.add_argument("--out", type=Path, help="new run folder")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run")
    p.add_argument(
        "--stop-after", type=int, metavar="N", help="stop after N steps, leaving a resumable run"
    )
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train with N processes on this machine, launched by torchrun; --batch-size is "
        "the global batch, split over them (methods fm, distill and cnf; planar trains in one "
        "process). On CUDA each process takes one GPU. Several machines: run torchrun "
        "yourself (docs/scale-out.md)",
    )
    p.add_argument(
        "--allow-data-change",
        action="store_true",
        help="with --resume: go on although a data file changed since the run started",
    )
    _add_config_flags(p)


def run(args: argparse.Namespace) -> None:
    """Train a new run into ``--out``, or continue ``--resume RUN_DIR``; print the outcome."""
    from flowmatch.cli.outputs import check_run_out
    from flowmatch.models import ModelConfig
    from flowmatch.training import TrainConfig, make_reporter, preset_config, resume, train
    from flowmatch.training.presets import split_model_fields

    given = {f.name: getattr(args, f.name) for f in config_fields()}
    given = {k: v for k, v in given.items() if v is not None}
    if args.stop_after is not None:
        check_int(args.stop_after, "--stop-after")
    if args.nproc is not None:
        return _launch(args, given)
    if args.resume is not None:
        extra = sorted(flag_name(k) for k in given if k != "device")
        extra += ["--out"] if args.out is not None else []
        if extra:
            raise FlowmatchError(
                f"--resume continues a run with its saved config; drop {', '.join(extra)}"
            )
        result = resume(
            args.resume,
            reporter=make_reporter(),
            stop_after=args.stop_after,
            device=given.get("device"),
            allow_data_change=args.allow_data_change,
        )
    else:
        if args.out is None:
            raise FlowmatchError("give --out RUN_DIR for a new run, or --resume RUN_DIR")
        if args.allow_data_change:
            raise FlowmatchError("--allow-data-change goes with --resume RUN_DIR; drop it")
        check_run_out(args.out)
        if "preset" in given:  # the preset's values, then the flags given explicitly
            cfg = preset_config(given.pop("preset"), **given)
        else:
            model, rest = split_model_fields(given)
            cfg = TrainConfig(model=ModelConfig(**model), **rest)
        result = train(cfg, args.out, reporter=make_reporter(), stop_after=args.stop_after)
    if result.rank != 0:  # rank 0 reports for the job
        return
    state = "done" if result.complete else "stopped (resume with --resume)"
    loss = "n/a" if result.loss is None else f"{result.loss:.4f}"
    print(
        f"{state}: step {result.step}/{result.total_steps}, loss {loss}, "
        f"{result.seconds:.1f}s; run folder: {result.run_dir}"
    )


def _launch(args: argparse.Namespace, given: dict) -> None:
    """Start ``--nproc`` processes of this command, once it is known that they can train."""
    from flowmatch.cli.launch import launch
    from flowmatch.training.checkpoint import read_run_record, run_config
    from flowmatch.training.start import DISTRIBUTED_METHODS

    check_int(args.nproc, "--nproc")
    if "TORCHELASTIC_RUN_ID" in os.environ or "WORLD_SIZE" in os.environ:
        raise FlowmatchError(
            "this process was started by torchrun, which already says how many processes "
            "there are; drop --nproc"
        )
    if args.resume is not None:
        method = run_config(read_run_record(args.resume), args.resume).method
    else:
        method = given.get("method", "fm")
    if args.nproc > 1 and method not in DISTRIBUTED_METHODS:
        raise FlowmatchError(
            f"--method {method} trains in one process only; drop --nproc (several processes "
            f"train {', '.join(DISTRIBUTED_METHODS)})"
        )
    launch(args.argv, args.nproc)
