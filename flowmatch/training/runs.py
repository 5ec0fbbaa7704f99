"""Load a trained run folder back as a model, for any training method."""

from __future__ import annotations

from pathlib import Path

import torch

from flowmatch.errors import FlowmatchError
from flowmatch.flows.base import Flow
from flowmatch.training.build import build_flow, resolve_device
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    load_checkpoint,
    read_run_record,
    with_prefix,
)
from flowmatch.training.config import TrainConfig
from flowmatch.training.methods import METHODS

__all__ = ["RunInfo", "load", "load_run"]


class RunInfo:
    """A run folder's record: config, data statistics and the checkpoint's step."""

    def __init__(self, run_dir: Path, record: dict, step: int) -> None:
        self.run_dir = Path(run_dir)
        self.record = record
        self.config = TrainConfig.from_dict(record.get("config"))
        self.shape = tuple(record["data"]["shape"])
        self.step = step

    @property
    def dim(self) -> int:
        return int(torch.tensor(self.shape).prod())


def load_run(run_dir: str | Path, *, device: str = "cpu", ema: bool = True) -> tuple[Flow, RunInfo]:
    """Rebuild the model of a run folder and load its (EMA, by default) weights.

    Reads only JSON and safetensors: loading never executes code from the folder.

    Args:
        run_dir: a folder written by ``flowmatch train``.
        device: where to put the model.
        ema: load the exponential-moving-average weights (recommended) or the raw ones.

    Returns:
        The model in eval mode, and the run's record.
    """
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    try:
        cfg = TrainConfig.from_dict(record.get("config"))
        if cfg.method not in METHODS:
            raise FlowmatchError(
                f"{run_dir} was trained with method '{cfg.method}', which this flowmatch lacks"
            )
        model = build_flow(cfg, record["data"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FlowmatchError):
            raise
        raise FlowmatchError(f"{run_dir}/config.json is incomplete or damaged ({exc})") from None
    tensors, meta = load_checkpoint(run_dir / CHECKPOINT_FILE)
    try:
        model.load_state_dict(with_prefix(tensors, "ema." if ema else "model."))
    except RuntimeError as exc:
        raise FlowmatchError(
            f"checkpoint in {run_dir} does not match its config.json ({str(exc).splitlines()[0]})"
        ) from None
    model = model.to(resolve_device(device)).eval()
    return model, RunInfo(run_dir, record, int(meta.get("step", 0)))


def load(run_dir: str | Path, *, device: str = "cpu", ema: bool = True) -> Flow:
    """Load a trained model from a run folder; see :func:`load_run`.

    Example:
        >>> import flowmatch  # doctest: +SKIP
        >>> flow = flowmatch.load("runs/moons")  # doctest: +SKIP
        >>> x = flow.sample(1000, solver="rk4", steps=10, seed=0)  # doctest: +SKIP
    """
    return load_run(run_dir, device=device, ema=ema)[0]
