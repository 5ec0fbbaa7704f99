"""Start a run or resume one: the run folder, the job of processes, the state, then the loop.

:func:`train` creates a new run folder and :func:`resume` continues one from its last
checkpoint; both hand the built :class:`~flowmatch.training.state.TrainState` to the
:class:`~flowmatch.training.loop.Trainer`. A run that fails before its first checkpoint
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from flowmatch.data import Dataset
from flowmatch.errors import FlowmatchError, check_device
from flowmatch.storage import StorageError, os_error_reason, remove_temp_files
from flowmatch.training.build import build_state, prepare_run
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    check_new_run_dir,
    read_run_record,
    run_config,
    write_run_record,
)
from flowmatch.training.config import TrainConfig
from flowmatch.training.config_checks import check_device_name
from flowmatch.training.distributed import Job, end_job, leave_together, start_job
from flowmatch.training.fingerprint import check_fingerprints
from flowmatch.training.lock import RunLock
from flowmatch.training.loop import Trainer, TrainResult
from flowmatch.training.metrics_log import warn
from flowmatch.training.progress import Reporter
from flowmatch.training.signals import StopSignals

__all__ = ["DISTRIBUTED_METHODS", "resume", "train"]


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
    file paths, the data's condition size, the data files' fingerprints), see
    :func:`~flowmatch.training.build.prepare_run`. Bad options, and sizes that cannot fit
    in memory, are refused before anything is written. The folder is locked while the run
    writes it. A run that ends before its first checkpoint (an error, Ctrl-C during start-up)
    leaves no folder behind, so the same ``run_dir`` works again.

    Started by torchrun, this process trains its share of a multi-process job (see
    :mod:`~flowmatch.training.distributed`): rank 0 checks and creates the folder, and every
    process builds the same model and trains.

    Args:
        cfg: the run's configuration.
        run_dir: the folder to create.
        reporter: progress display; silent by default.
        stop_after: stop after this many steps, leaving a resumable run (for time-boxed jobs).
        max_seconds: stop once this much wall-clock time has gone into training steps,
            leaving a resumable run (equal time budgets in benchmarks).

    Returns:
        What was done.

    Raises:
        FlowmatchError: one line for bad input, a folder in use (``RunLocked``), a file that
            cannot be written (``StorageError``), divergence or a stop signal (see
            :meth:`Trainer.run`).
    """
    cfg.validate()
    run_dir = Path(run_dir)
    with StopSignals(defer=False), _joined(cfg) as job:  # SIGTERM, SIGHUP act as Ctrl-C here
        built: list[Dataset] = []  # rank 0's data set, built once for the record and training

        def resolve() -> tuple[TrainConfig, dict]:
            check_new_run_dir(run_dir)
            check_device(cfg.device)
            job.local_batch(cfg.batch_size)
            built.append(cfg.dataset())
            return prepare_run(cfg, built[0])

        cfg, record = job.on_main(resolve)
        device = job.device(check_device(cfg.device))
        dataset = built[0] if built else None  # the other ranks build their own
        state = build_state(cfg, record, device, job, dataset)  # bad options fail here
        if cfg.init_from:
            state.warm_start(cfg.init_from)
        if not job.is_main:
            job.on_main(lambda: None)  # rank 0 creates the folder; its error ends us too
            return Trainer(cfg, run_dir, state, job).run(reporter, stop_after, max_seconds)
        created = None
        ours = False  # whether the folder holds this run's record and nothing to resume
        try:
            with contextlib.ExitStack() as held:
                try:

                    def create() -> None:
                        nonlocal created, ours
                        created = _make_folder(run_dir)
                        held.enter_context(RunLock(run_dir))
                        remove_temp_files(run_dir)
                        check_new_run_dir(run_dir)  # another process may have been quicker
                        ours = True
                        write_run_record(run_dir, record)

                    job.on_main(create)
                    return Trainer(cfg, run_dir, state, job).run(reporter, stop_after, max_seconds)
                except BaseException:
                    ours = ours and not (run_dir / CHECKPOINT_FILE).exists()
                    if ours:  # nothing to resume: leave nothing, so run_dir works again
                        _remove_run_files(run_dir)
                    raise
        except FlowmatchError as exc:
            if not ours:
                raise
            gone = "removed" if _remove_folders(run_dir, created) else "emptied"
            raise type(exc)(f"{exc}; the run folder was {gone}") from None
        except BaseException:
            if ours:
                _remove_folders(run_dir, created)
            raise


def resume(
    run_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    device: str | None = None,
    max_seconds: float | None = None,
    allow_data_change: bool = False,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint to its configured steps.

    A folder with a record but no checkpoint yet starts from step 0. The metrics log is cut
    back to the checkpoint's step (unreadable lines dropped with a warning), the temporary
    files of a killed write are removed, and the folder is locked while the run writes it.

    Started by torchrun, this process continues its share of a multi-process job: with as
    many processes as the checkpoint was saved by, bit for bit; with another number, from
    the saved weights and optimizer on a new random stream (a warning says so).

    Args:
        run_dir: the run folder.
        reporter: progress display; silent by default.
        stop_after: stop after this many more steps.
        device: train there instead of the saved ``device``.
        max_seconds: stop once this much wall-clock time has gone into training steps.
        allow_data_change: go on although a data file's bytes changed since the run started
            (the record's fingerprint is updated); by default that is refused.

    Returns:
        What was done.

    Raises:
        FlowmatchError: as :func:`train`; also for a damaged run folder.
    """
    run_dir = Path(run_dir)
    if device is not None:
        check_device_name(device)
    with StopSignals(defer=False), contextlib.ExitStack() as held:
        record = read_run_record(run_dir)
        cfg = run_config(record, run_dir)
        if device is not None:
            cfg = dataclasses.replace(cfg, device=device)
        job = held.enter_context(_joined(cfg))

        def open_run() -> list[str]:
            held.enter_context(RunLock(run_dir))
            remove_temp_files(run_dir)
            check_device(cfg.device)
            job.local_batch(cfg.batch_size)
            return check_fingerprints(record, allow_change=allow_data_change)

        changed = job.on_main(open_run)
        state = build_state(cfg, record, job.device(check_device(cfg.device)), job)
        checkpoint = run_dir / CHECKPOINT_FILE
        if checkpoint.exists() or checkpoint.is_symlink():
            note = state.load(checkpoint, job, cfg.seed)
            if note and job.is_main:
                warn(note)
        elif cfg.init_from:
            state.warm_start(cfg.init_from)
        if changed and job.is_main:
            warn(f"{run_dir}: going on although its {', '.join(changed)} file changed")
            _rewrite_record(run_dir, record)
        return Trainer(cfg, run_dir, state, job).run(reporter, stop_after, max_seconds)


DISTRIBUTED_METHODS = ("fm", "distill", "cnf")
"""The methods a job of several processes trains; planar stacks train in one process."""


@contextlib.contextmanager
def _joined(cfg: TrainConfig) -> Iterator[Job]:
    """This process's job (see :func:`~flowmatch.training.distributed.start_job`), left
    at the end; a method that trains in one process only is refused in a job of several."""
    job = start_job(cfg.device)
    try:
        if job.distributed and cfg.method not in DISTRIBUTED_METHODS:
            raise FlowmatchError(
                f"--method {cfg.method} trains in one process only; start it without "
                f"torchrun or --nproc (several processes train {', '.join(DISTRIBUTED_METHODS)})"
            )
        yield job
        leave_together(job)  # only after a run that ended well: the others are there too
    finally:
        end_job(job)


def _rewrite_record(run_dir: Path, record: dict) -> None:
    """Save an updated record, keeping the tags it was written with."""
    extra = {k: v for k, v in record.items() if k not in ("format", "format_version")}
    write_run_record(run_dir, extra)


def _make_folder(run_dir: Path) -> Path | None:
    """Create ``run_dir`` (and missing parents); return the topmost folder created, if any."""
    missing = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = os_error_reason(exc, run_dir)
        raise StorageError(f"cannot create the run folder {run_dir}: {reason}") from None
    return missing[-1] if missing else None


def _remove_run_files(run_dir: Path) -> None:
    """Remove what a run that never checkpointed wrote (its lock goes with the lock)."""
    for name in (CONFIG_FILE, METRICS_FILE):
        with contextlib.suppress(OSError):
            (run_dir / name).unlink(missing_ok=True)
    remove_temp_files(run_dir)


def _remove_folders(run_dir: Path, created: Path | None) -> bool:
    """Remove the folders :func:`_make_folder` created, if they are empty; say if they went."""
    if created is None:
        return False
    for folder in (run_dir, *run_dir.parents):
        try:
            folder.rmdir()
        except OSError:
            return False
        if folder == created:
            return True
    return False
