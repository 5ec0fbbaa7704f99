"""The training loop: batch, loss, optimizer step, logs and checkpoints, to the last step.

Runs are started and resumed by :mod:`~flowmatch.training.start`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError
from flowmatch.storage import StorageError
from flowmatch.training.batches import Batch
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    save_checkpoint,
)
from flowmatch.training.config import TrainConfig
from flowmatch.training.distributed import Job, PeerLost
from flowmatch.training.methods import METHODS, Method
from flowmatch.training.metrics_log import MetricsLog
from flowmatch.training.optim import OPTIMIZERS, optimizer_step
from flowmatch.training.progress import NullReporter, Reporter
from flowmatch.training.schedules import lr_factor
from flowmatch.training.signals import StopSignals
from flowmatch.training.state import TrainState

# OPTIMIZERS (of training.optim) is listed for the command line, which reads its choices here
__all__ = [
    "OPTIMIZERS",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
]


class TrainingInterrupted(FlowmatchError):
    """Raised after SIGINT, SIGTERM or SIGHUP, once the last finished step is checkpointed."""


class TrainingDiverged(FlowmatchError):
    """Raised when the loss or the weights stop being finite; the last good checkpoint stays."""


@dataclass
class TrainResult:
    """What a call to :func:`~flowmatch.training.start.train` or
    :func:`~flowmatch.training.start.resume` did."""

    run_dir: Path
    step: int
    total_steps: int
    loss: float | None
    seconds: float
    cpu_seconds: float = 0.0
    """CPU time of the training steps (this process, all threads): less sensitive than
    ``seconds`` to other jobs sharing the machine."""
    rank: int = 0
    """This process's rank in a job of several (0 reports)."""

    @property
    def complete(self) -> bool:
        return self.step >= self.total_steps


OUT_OF_TIME, SIGNALLED = 1, 2
"""Why the loop stops early; a job stops for the most urgent reason of any process."""


class TrainingLoss(nn.Module):
    """The method's loss on a batch as a module, so DistributedDataParallel can wrap it.

    DDP averages the gradients of the parameters used in its module's ``forward``; the loss
    calls the velocity network (once, or many times in a solve) through the model's own
    methods, so the module wrapped is this one, which holds the model and keeps its
    ``state_dict`` keys as they are.
    """

    def __init__(self, method: Method, model: nn.Module) -> None:
        super().__init__()
        self.method, self.model = method, model

    def forward(self, batch: Batch, generator: torch.Generator) -> Tensor:
        return self.method.loss(self.model, batch, generator)


class Trainer:
    """Trains a run's :class:`TrainState` to ``cfg.steps``: it steps, logs and checkpoints.

    The whole story reads top to bottom in :meth:`run`. A run folder is created by
    :func:`~flowmatch.training.start.train` and continued by
    :func:`~flowmatch.training.start.resume`; a resumed run ends with the same weights
    as an uninterrupted one because the checkpoint holds the optimizer, EMA and generator
    states (see :class:`~flowmatch.training.state.TrainState`). Everything random comes from
    the state's batch source, so a process of a multi-process run needs only a state whose
    source draws from its own generator.

    Nothing is lost: a checkpoint is written only of a finished step whose loss and weights
    are finite, atomically, so the folder always holds the last good one. A stop signal
    (Ctrl-C, SIGTERM, SIGHUP) is acted on between steps.

    In a job of several processes (see :mod:`~flowmatch.training.distributed`) every process
    runs this loop on its share of each batch: DDP averages the gradients, the logged loss
    is averaged, a stop is agreed on after every step, and rank 0 alone writes the metrics
    and the checkpoint (with every rank's generator state).

    Args:
        cfg: the run's resolved configuration.
        run_dir: the run folder (metrics and checkpoint are written there).
        state: the model, EMA, optimizer, batch source and step to continue from.
        job: this process's place in its job (default: the only process).
    """

    def __init__(
        self, cfg: TrainConfig, run_dir: str | Path, state: TrainState, job: Job | None = None
    ) -> None:
        self.cfg, self.run_dir, self.state = cfg, Path(run_dir), state
        self.job = job or Job()
        self.method = METHODS[cfg.method](cfg)
        checkpoint = self.run_dir / CHECKPOINT_FILE
        self.saved_step: int | None = state.step if checkpoint.is_file() else None
        """The step of the checkpoint in the folder (None: there is none)."""

    def kept(self) -> str:
        """What the folder holds to continue from, for a message."""
        if self.saved_step is None or not (self.run_dir / CHECKPOINT_FILE).is_file():
            return "no checkpoint was written"
        return f"the last good checkpoint, of step {self.saved_step}, is kept"

    def diverged(self, what: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"training diverged ({what}); lower --lr or set/lower --grad-clip "
            f"(e.g. --grad-clip 1); {self.kept()}"
        )

    def save(self, loss: float | None, loss_sum: Tensor | None = None) -> None:
        """Checkpoint the state if its weights (and the running ``loss_sum``) are finite.

        Every process of a job takes part (its generator state is gathered); rank 0 writes.
        """
        sources = self.job.gather(self.state.source.state_dict())

        def write() -> None:
            tensors, meta = self.state.record(loss, sources)
            checked = [t for t in tensors.values() if t.is_floating_point()]
            if not all_finite(checked + ([] if loss_sum is None else [loss_sum])):
                raise self.diverged(f"non-finite loss or weights by step {self.state.step}")
            try:
                save_checkpoint(self.run_dir / CHECKPOINT_FILE, tensors, meta)
            except StorageError as exc:
                raise StorageError(f"{exc}; {self.kept()}") from None

        self.job.on_main(write)
        self.saved_step = self.state.step

    def run(
        self,
        reporter: Reporter | None = None,
        stop_after: int | None = None,
        max_seconds: float | None = None,
    ) -> TrainResult:
        """Train until ``cfg.steps``, ``stop_after`` more steps or ``max_seconds``, whichever
        comes first, and checkpoint there.

        Raises:
            TrainingInterrupted: a stop signal came; the last finished step is checkpointed.
            TrainingDiverged: the loss or the weights are not finite (checked at every log
                and before every checkpoint); the last good checkpoint stays.
            StorageError: a checkpoint could not be written (full disk...); the last good
                one stays.
        """
        cfg, state, job = self.cfg, self.state, self.job
        model, source = state.model, state.source
        reporter = (reporter or NullReporter()) if job.is_main else NullReporter()
        end = cfg.steps if stop_after is None else min(cfg.steps, state.step + stop_after)
        loss_sum, n_sum, last_loss = torch.zeros((), device=model.device), 0, None
        stopping = 0  # why to stop, the most urgent on any process: SIGNALLED, OUT_OF_TIME
        t_start = t_log = time.perf_counter()
        cpu_start = time.process_time()
        with StopSignals(defer=True) as stop:
            # rank 0 writes the log (rows past the checkpoint's step go); the others, nothing
            log = MetricsLog(self.run_dir / METRICS_FILE, state.step) if job.is_main else None
            try:
                loss_fn = job.wrap(TrainingLoss(self.method, model))
                reporter.start(cfg.steps, state.step)
                model.train()
                # one process also stops for a signal that came after a step's check (while
                # logging); a job stops only where its processes agreed to
                while state.step < end and not stopping and (job.distributed or not stop.signum):
                    lr = cfg.lr * lr_factor(
                        state.step, cfg.steps, cfg.warmup_steps, cfg.lr_decay, cfg.min_lr_ratio
                    )
                    for group in state.optimizer.param_groups:
                        group["lr"] = lr
                    batch = source.next()
                    with state.precision.autocast():  # --precision: the forward pass only
                        loss = loss_fn(batch, source.generator)  # its draws follow the batch's
                    optimizer_step(
                        loss,
                        state.params,
                        state.optimizer,
                        cfg.grad_clip,
                        state.ema,
                        state.precision.scaler,
                    )
                    state.step += 1
                    if stop.signum is not None:
                        stopping = SIGNALLED
                    elif max_seconds is not None and time.perf_counter() - t_start >= max_seconds:
                        stopping = OUT_OF_TIME
                    stopping = job.most(stopping)
                    if stopping:
                        end = state.step  # stopped or out of time: log, checkpoint, stop here
                    loss_sum += loss.detach()
                    n_sum += 1
                    if state.step % cfg.log_every == 0 or state.step == end:
                        now = time.perf_counter()
                        last_loss = job.mean(loss_sum / n_sum).item()  # an interval's one sync
                        if not math.isfinite(last_loss):
                            first = state.step - n_sum + 1
                            raise self.diverged(f"loss {last_loss} in steps {first}-{state.step}")
                        row = {
                            "step": state.step,
                            "loss": last_loss,
                            "lr": lr,
                            "steps_per_s": n_sum / max(now - t_log, 1e-9),
                            "elapsed_s": now - t_start,
                        }
                        if log is not None:
                            log.write(row)
                        reporter.log(state.step, row)
                        loss_sum.zero_()
                        n_sum, t_log = 0, now
                    if state.step % cfg.checkpoint_every == 0 or state.step == end:
                        self.save(last_loss, loss_sum)
                signalled = stopping == SIGNALLED or (not job.distributed and bool(stop.signum))
                if signalled and state.step < cfg.steps:
                    if self.saved_step != state.step:  # no step ran after the signal
                        self.save(last_loss, loss_sum)
                    command = f"flowmatch train --resume {self.run_dir}"
                    if job.distributed:
                        command += f" --nproc {job.world_size}"
                    raise TrainingInterrupted(
                        f"stopped by {stop.name or 'a signal to another process of the job'} "
                        f"after step {state.step}/{cfg.steps}, which is checkpointed; "
                        f"continue with: {command}"
                    )
            except FlowmatchError as exc:
                if job.distributed and not job.is_main and not isinstance(exc, PeerLost):
                    exc.quiet = True  # rank 0 says the same (the errors here are agreed on)
                raise
            finally:
                if log is not None:
                    log.close()
                reporter.close()
        return TrainResult(
            self.run_dir,
            state.step,
            cfg.steps,
            last_loss,
            time.perf_counter() - t_start,
            time.process_time() - cpu_start,
            job.rank,
        )


def all_finite(tensors: list[Tensor]) -> bool:
    """Whether every value of ``tensors`` is finite, in one host sync per device.

    Example:
        >>> all_finite([torch.ones(3), torch.zeros(())])
        True
        >>> all_finite([torch.tensor([1.0, float("nan")])])
        False
    """
    flags: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        flags.setdefault(t.device, []).append(torch.isfinite(t).all())
    return all(bool(torch.stack(f).all()) for f in flags.values())
