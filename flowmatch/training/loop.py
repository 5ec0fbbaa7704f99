"""The training loop (batch, loss, optimizer step; logs and checkpoints), train and resume."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from flowmatch.errors import FlowmatchError, lookup
from flowmatch.training.build import build_state, prepare_run, resolve_device
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    atomic_write,
    check_new_run_dir,
    read_run_record,
    write_run_record,
)
from flowmatch.training.config import TrainConfig
from flowmatch.training.methods import METHODS
from flowmatch.training.optim import OPTIMIZERS, optimizer_step
from flowmatch.training.progress import NullReporter, Reporter
from flowmatch.training.schedules import LR_DECAYS, TIME_SAMPLERS, lr_factor
from flowmatch.training.state import TrainState

# OPTIMIZERS (of training.optim) is listed for the command line, which reads its choices here
__all__ = ["OPTIMIZERS", "TrainResult", "Trainer", "TrainingInterrupted", "resume", "train"]


class TrainingInterrupted(FlowmatchError):
    """Raised after Ctrl-C, once a checkpoint of the last finished step has been written."""


@dataclass
class TrainResult:
    """What a call to :func:`train` or :func:`resume` did."""

    run_dir: Path
    step: int
    total_steps: int
    loss: float | None
    seconds: float
    cpu_seconds: float = 0.0
    """CPU time of the training steps (this process, all threads): less sensitive than
    ``seconds`` to other jobs sharing the machine."""

    @property
    def complete(self) -> bool:
        return self.step >= self.total_steps


class Trainer:
    """Trains a run's :class:`TrainState` to ``cfg.steps``: it steps, logs and checkpoints.

    The whole story reads top to bottom in :meth:`run`. A run folder is created by
    :func:`train` and continued by :func:`resume`; a resumed run ends with the same weights
    as an uninterrupted one because the checkpoint holds the optimizer, EMA and generator
    states (see :class:`~flowmatch.training.state.TrainState`). Everything random comes from
    the state's batch source, so a process of a multi-process run needs only a state whose
    source draws from its own generator.

    Args:
        cfg: the run's resolved configuration.
        run_dir: the run folder (metrics and checkpoint are written there).
        state: the model, EMA, optimizer, batch source and step to continue from.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | Path, state: TrainState) -> None:
        self.cfg, self.run_dir, self.state = cfg, Path(run_dir), state
        self.method = METHODS[cfg.method](cfg)

    def save(self, loss: float | None) -> None:
        self.state.save(self.run_dir / CHECKPOINT_FILE, loss)

    def run(
        self,
        reporter: Reporter | None = None,
        stop_after: int | None = None,
        max_seconds: float | None = None,
    ) -> TrainResult:
        """Train until ``cfg.steps``, ``stop_after`` more steps or ``max_seconds``, whichever
        comes first, and checkpoint there."""
        cfg, state, method = self.cfg, self.state, self.method
        model, source = state.model, state.source
        reporter = reporter or NullReporter()
        end = cfg.steps if stop_after is None else min(cfg.steps, state.step + stop_after)
        reporter.start(cfg.steps, state.step)
        loss_sum, n_sum, last_loss = torch.zeros((), device=model.device), 0, None
        t_start = t_log = time.perf_counter()
        cpu_start = time.process_time()
        log = (self.run_dir / METRICS_FILE).open("a")
        model.train()
        try:
            while state.step < end:
                lr = cfg.lr * lr_factor(
                    state.step, cfg.steps, cfg.warmup_steps, cfg.lr_decay, cfg.min_lr_ratio
                )
                for group in state.optimizer.param_groups:
                    group["lr"] = lr
                batch = source.next()
                loss = method.loss(model, batch, source.generator)  # its draws follow the batch's
                optimizer_step(loss, state.params, state.optimizer, cfg.grad_clip, state.ema)
                state.step += 1
                if max_seconds is not None and time.perf_counter() - t_start >= max_seconds:
                    end = state.step  # out of time: log, checkpoint and stop at this step
                loss_sum += loss.detach()
                n_sum += 1
                if state.step % cfg.log_every == 0 or state.step == end:
                    now = time.perf_counter()
                    last_loss = (loss_sum / n_sum).item()  # the only host sync of an interval
                    if not math.isfinite(last_loss):
                        raise FlowmatchError(
                            f"training diverged (loss {last_loss} at step {state.step}); "
                            "lower --lr or raise --grad-clip; the last checkpoint is kept"
                        )
                    row = {
                        "step": state.step,
                        "loss": last_loss,
                        "lr": lr,
                        "steps_per_s": n_sum / max(now - t_log, 1e-9),
                        "elapsed_s": now - t_start,
                    }
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    reporter.log(state.step, row)
                    loss_sum.zero_()
                    n_sum, t_log = 0, now
                if state.step % cfg.checkpoint_every == 0 or state.step == end:
                    self.save(last_loss)
        except KeyboardInterrupt:
            self.save(last_loss)
            raise TrainingInterrupted(
                f"interrupted at step {state.step}/{cfg.steps}; "
                f"continue with: flowmatch train --resume {self.run_dir}"
            ) from None
        finally:
            log.close()
            reporter.close()
        return TrainResult(
            self.run_dir,
            state.step,
            cfg.steps,
            last_loss,
            time.perf_counter() - t_start,
            time.process_time() - cpu_start,
        )


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    max_seconds: float | None = None,
) -> TrainResult:
    """Start a new run in ``run_dir`` (which must not hold anything) and train it.

    ``cfg`` itself is left unchanged; the run folder records the resolved copy (absolute
    file paths, the data's condition size), see :func:`~flowmatch.training.build.prepare_run`.

    Args:
        cfg: the run's configuration.
        run_dir: the folder to create.
        reporter: progress display; silent by default.
        stop_after: stop after this many steps, leaving a resumable run (for time-boxed jobs).
        max_seconds: stop once this much wall-clock time has gone into training steps,
            leaving a resumable run (equal time budgets in benchmarks).

    Returns:
        What was done.
    """
    cfg.validate()
    lookup(METHODS, cfg.method, "--method")
    lookup(OPTIMIZERS, cfg.optimizer, "--optimizer")
    lookup(LR_DECAYS, cfg.lr_decay, "--lr-decay")  # before the run folder exists
    lookup(TIME_SAMPLERS, cfg.time_sampling, "--time-sampling")
    run_dir = Path(run_dir)
    check_new_run_dir(run_dir)
    device = resolve_device(cfg.device)
    cfg, record = prepare_run(cfg)
    state = build_state(cfg, record, device)  # builds the model: bad options fail here
    if cfg.init_from:
        state.warm_start(cfg.init_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_record(run_dir, record)
    return Trainer(cfg, run_dir, state).run(reporter, stop_after, max_seconds)


def resume(
    run_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    device: str | None = None,
    max_seconds: float | None = None,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint to its configured steps."""
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    cfg = TrainConfig.from_dict(record.get("config"))
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    state = build_state(cfg, record, resolve_device(cfg.device))
    if (run_dir / CHECKPOINT_FILE).exists():
        state.load(run_dir / CHECKPOINT_FILE)
        _truncate_metrics(run_dir / METRICS_FILE, state.step)
    elif cfg.init_from:
        state.warm_start(cfg.init_from)
    return Trainer(cfg, run_dir, state).run(reporter, stop_after, max_seconds)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint, so a resumed log has no duplicates."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    atomic_write(path, "".join(ln + "\n" for ln in keep).encode())
