"""The training state of a run and its checkpoint, one plain record written and read here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError
from flowmatch.training.batches import BatchSource
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    check_weights,
    error_summary,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
    with_prefix,
)
from flowmatch.training.ema import EMA

__all__ = ["TrainState"]


@dataclass(eq=False)
class TrainState:
    """Everything a run changes as it trains: weights, EMA, optimizer, batch source, step.

    :meth:`save` writes it as ``checkpoint.safetensors``, this record:

    ====================  ===============================================================
    tensor                what
    ====================  ===============================================================
    ``model.<name>``      the raw weights
    ``ema.<name>``        the EMA weights (what :func:`~flowmatch.training.runs.load` reads)
    ``optim.<i>.<key>``   the optimizer state of parameter i
    ``rng.train``         the batch source's generator, as the next draw finds it
    ``rng.chunk``         chunked exact-OT draws only: the generator state the current
                          chunk of batches was drawn from
    ====================  ===============================================================

    and JSON metadata ``step`` (optimizer steps done, also the batches drawn),
    ``ema_updates``, ``param_groups`` (the optimizer's settings, lr of the last step),
    ``chunk_start`` (chunked draws only: the step of the chunk's first batch) and ``loss``
    (the mean of the last log interval). :meth:`load` restores all of it, so a resumed run
    continues bit for bit.

    Attributes:
        model: the model being trained.
        ema: its exponential moving average.
        optimizer: the optimizer over ``params``.
        source: where the batches come from (and the run's generator).
        step: optimizer steps done.
        params: the trained parameters (those with ``requires_grad``).
    """

    model: nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    source: BatchSource
    step: int = 0
    params: list[nn.Parameter] = field(init=False)

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def save(self, path: Path, loss: float | None) -> None:
        """Write the record to ``path`` atomically; ``loss`` is the last logged loss."""
        save_checkpoint(path, *self.record(loss))

    def record(self, loss: float | None) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The checkpoint's tensors (on the training device) and JSON metadata."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.ema.model.state_dict().items()}
        opt_tensors, groups = optimizer_to_tensors(self.optimizer)
        tensors |= opt_tensors
        source = self.source.state_dict()
        tensors["rng.train"] = source["generator"]
        meta = {"step": self.step, "ema_updates": self.ema.updates, "param_groups": groups}
        if source.get("chunk_generator") is not None:  # a resume draws the chunk again
            tensors["rng.chunk"] = source["chunk_generator"]
            meta["chunk_start"] = source["chunk_start"]
        meta["loss"] = loss
        return tensors, meta

    def load(self, path: Path) -> None:
        """Restore the record saved at ``path`` by :meth:`save` (of a run of the same config)."""
        tensors, meta = load_checkpoint(path)
        check_weights(tensors, self.model.state_dict(), "model.", path)
        check_weights(tensors, self.ema.model.state_dict(), "ema.", path)
        for name, value in tensors.items():
            if name.startswith("optim.") and not (
                value.is_floating_point() and bool(torch.isfinite(value).all())
            ):
                raise FlowmatchError(
                    f"{path}: {name} is not a finite floating-point tensor; the file is corrupt"
                )
        try:
            self.model.load_state_dict(with_prefix(tensors, "model."))
            self.ema.model.load_state_dict(with_prefix(tensors, "ema."))
            optimizer_from_tensors(self.optimizer, tensors, meta["param_groups"])
            step = int(meta["step"])
            self.source.load_state_dict(
                {
                    "generator": tensors["rng.train"],
                    "drawn": step,
                    "chunk_generator": tensors.get("rng.chunk"),
                    "chunk_start": meta.get("chunk_start"),
                }
            )
            self.step, self.ema.updates = step, int(meta["ema_updates"])
        except FlowmatchError:
            raise
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise FlowmatchError(
                f"checkpoint in {Path(path).parent} does not match its config.json "
                f"({error_summary(exc)})"
            ) from None

    def warm_start(self, run_dir: str | Path) -> None:
        """Start the model and its EMA from another run's EMA weights (reflow, distillation)."""
        path = Path(run_dir) / CHECKPOINT_FILE
        tensors, _ = load_checkpoint(path)
        check_weights(tensors, self.model.state_dict(), "ema.", path)
        weights = with_prefix(tensors, "ema.")
        try:
            self.model.load_state_dict(weights)
            self.ema.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise FlowmatchError(
                f"--init-from {run_dir}: its weights do not fit this model "
                f"({error_summary(exc)}); use the teacher's --model, --width and --depth"
            ) from None
