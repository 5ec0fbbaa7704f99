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
from flowmatch.training.distributed import Job, new_stream_seed
from flowmatch.training.ema import EMA
from flowmatch.training.precision import Precision

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
    ``rng.train.rank<r>`` a job of several processes: the generator of rank r >= 1
    ``rng.chunk.rank<r>`` (``rng.train`` and ``rng.chunk`` are rank 0's)
    ====================  ===============================================================

    and JSON metadata ``step`` (optimizer steps done, also the batches drawn),
    ``ema_updates``, ``param_groups`` (the optimizer's settings, lr of the last step),
    ``chunk_start`` (chunked draws only: the step of the chunk's first batch),
    ``world_size`` (the processes that trained it; absent: one) and ``loss`` (the mean of
    the last log interval). :meth:`load` restores all of it, so a run resumed with as many
    processes continues bit for bit.

    Attributes:
        model: the model being trained.
        ema: its exponential moving average.
        optimizer: the optimizer over ``params``.
        source: where the batches come from (and the run's generator).
        step: optimizer steps done.
        precision: the precision of the forward pass (``--precision``); an fp16 run's
            gradient scaler is saved in the JSON metadata as ``grad_scaler`` (no other run
            has one).
        params: the trained parameters (those with ``requires_grad``).
    """

    model: nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    source: BatchSource
    step: int = 0
    precision: Precision = field(default_factory=Precision)
    params: list[nn.Parameter] = field(init=False)

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def save(self, path: Path, loss: float | None) -> None:
        """Write the record to ``path`` atomically; ``loss`` is the last logged loss."""
        save_checkpoint(path, *self.record(loss))

    def record(
        self, loss: float | None, sources: list[dict[str, Any]] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The checkpoint's tensors (on the training device) and JSON metadata.

        Args:
            loss: the last logged loss.
            sources: in a job of several processes, every rank's batch-source
                ``state_dict()`` in rank order (default: this state's source alone).
        """
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.ema.model.state_dict().items()}
        opt_tensors, groups = optimizer_to_tensors(self.optimizer)
        tensors |= opt_tensors
        sources = sources or [self.source.state_dict()]
        meta = {"step": self.step, "ema_updates": self.ema.updates, "param_groups": groups}
        for rank, source in enumerate(sources):
            suffix = f".rank{rank}" if rank else ""
            tensors["rng.train" + suffix] = source["generator"]
            if source.get("chunk_generator") is not None:  # a resume draws the chunk again
                tensors["rng.chunk" + suffix] = source["chunk_generator"]
                meta["chunk_start"] = source["chunk_start"]  # the same on every rank
        if len(sources) > 1:
            meta["world_size"] = len(sources)
        if self.precision.scaler is not None:  # fp16: a resume continues its loss scale
            meta["grad_scaler"] = self.precision.scaler.state_dict()
        meta["loss"] = loss
        return tensors, meta

    def load(self, path: Path, job: Job | None = None, seed: int = 0) -> str | None:
        """Restore the record saved at ``path`` by :meth:`save` (of a run of the same config).

        A process of a job restores its own rank's generator. Saved by another number of
        processes, the run goes on from the saved weights and optimizer, but each process
        draws from a new generator (:func:`~flowmatch.training.distributed.new_stream_seed`
        of ``seed``), since there is no stream to continue.

        Args:
            path: the checkpoint.
            job: this process's place in its job (default: the only process).
            seed: the run's seed (for a new stream).

        Returns:
            None, or a one-line note that the run continues on a new random stream.
        """
        job = job or Job()
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
            saved_world = int(meta.get("world_size", 1))
            note = None
            if saved_world == job.world_size:
                suffix = f".rank{job.rank}" if job.rank else ""
                generator = tensors["rng.train" + suffix]
                chunk = tensors.get("rng.chunk" + suffix)
            else:
                seed = new_stream_seed(seed, job.rank, job.world_size, step)
                generator, chunk = torch.Generator().manual_seed(seed).get_state(), None
                note = (
                    f"{Path(path).parent}: saved by {saved_world} process(es), resumed by "
                    f"{job.world_size}: training goes on from step {step} on a new random stream"
                )
            self.source.load_state_dict(
                {
                    "generator": generator,
                    "drawn": step,
                    "chunk_generator": chunk,
                    "chunk_start": meta.get("chunk_start"),
                }
            )
            self.step, self.ema.updates = step, int(meta["ema_updates"])
            if self.precision.scaler is not None and "grad_scaler" in meta:
                self.precision.scaler.load_state_dict(meta["grad_scaler"])
            return note
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
