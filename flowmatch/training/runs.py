"""Load a trained run folder back as a model, for any training method."""

from __future__ import annotations

from pathlib import Path

import torch

from flowmatch.errors import FlowmatchError, check_device
from flowmatch.flows.base import Flow
from flowmatch.training.build import build_flow, check_size
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    check_weights,
    error_summary,
    load_checkpoint,
    read_run_record,
    run_config,
    with_prefix,
)

__all__ = ["RunInfo", "load", "load_run"]


class RunInfo:
    """A run folder's record: config, data statistics and the checkpoint's step."""

    def __init__(self, run_dir: Path, record: dict, step: int) -> None:
        self.run_dir = Path(run_dir)
        self.record = record
        self.config = run_config(record, self.run_dir)
        self.shape = tuple(record["data"]["shape"])
        self.step = step

    @property
    def dim(self) -> int:
        return int(torch.tensor(self.shape).prod())


def load_run(run_dir: str | Path, *, device: str = "cpu", ema: bool = True) -> tuple[Flow, RunInfo]:
    """Rebuild the model of a run folder and load its (EMA, by default) weights.

    Reads only JSON and safetensors: loading never executes code from the folder. A
    damaged or crafted folder (wrong types in config.json, a model too big for memory,
    NaN or wrongly typed weights) is one line of :class:`~flowmatch.errors.FlowmatchError`.

    Args:
        run_dir: a folder written by ``flowmatch train``.
        device: where to put the model.
        ema: load the exponential-moving-average weights (recommended) or the raw ones.

    Returns:
        The model in eval mode, and the run's record.
    """
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    cfg = run_config(record, run_dir)
    target = check_device(device)
    try:
        check_size(cfg, record["data"], target, training=False)
        model = build_flow(cfg, record["data"])
    except FlowmatchError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise FlowmatchError(
            f"{run_dir / CONFIG_FILE} is incomplete or damaged ({error_summary(exc)})"
        ) from None
    path = run_dir / CHECKPOINT_FILE
    tensors, meta = load_checkpoint(path)
    prefix = "ema." if ema else "model."
    check_weights(tensors, model.state_dict(), prefix, path)
    try:
        model.load_state_dict(with_prefix(tensors, prefix))
    except RuntimeError as exc:
        raise FlowmatchError(
            f"checkpoint in {run_dir} does not match its config.json ({error_summary(exc)})"
        ) from None
    model = model.to(target).eval()
    return model, RunInfo(run_dir, record, meta.get("step", 0))


def load(run_dir: str | Path, *, device: str = "cpu", ema: bool = True) -> Flow:
    """Load a trained model from a run folder; see :func:`load_run`.

    Example:
        >>> import flowmatch  # doctest: +SKIP
        >>> flow = flowmatch.load("runs/moons")  # doctest: +SKIP
        >>> x = flow.sample(1000, solver="rk4", steps=10, seed=0)  # doctest: +SKIP
    """
    return load_run(run_dir, device=device, ema=ema)[0]
