"""``flowmatch train --nproc N``: the same command in N processes, started by torchrun.

The launcher is torchrun's own (``torch.distributed.run`` in its standalone mode: one
machine, a free port), so a job started here is exactly one started with
``torchrun --standalone --nproc-per-node N -m flowmatch train ...``. What this adds is the
one-line report: when a process fails, the launcher names it (rank, and the signal that
killed it) and the processes that lost contact with it stay silent.
"""

from __future__ import annotations

import logging
import os
import signal

from flowmatch.errors import FlowmatchError

__all__ = ["LAUNCHED_ENV", "JobFailed", "launch"]

LAUNCHED_ENV = "FLOWMATCH_LAUNCHED"
"""Set in the processes this launcher starts: it reports a process that dies, so the others,
which only lost contact with it, say nothing."""


class JobFailed(FlowmatchError):
    """A process of the job failed; ``exit_status`` is the command's, ``quiet`` when the
    process said why itself."""

    def __init__(self, message: str, exit_status: int = 2, quiet: bool = False) -> None:
        super().__init__(message)
        self.exit_status, self.quiet = exit_status, quiet


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` (or ``--nproc=N``): what each process runs.

    Example:
        >>> without_nproc(["train", "--nproc", "2", "--out", "r"])
        ['train', '--out', 'r']
    """
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def cause(failures: dict) -> tuple[int, object]:
    """The failure to report, as (rank, failure): a process killed by a signal if there is
    one (the others only lost contact with it, and torchrun may see theirs first), else the
    first to fail.

    Example:
        >>> from types import SimpleNamespace as F
        >>> cause({0: F(exitcode=2, timestamp=1), 1: F(exitcode=-9, timestamp=2)})[0]
        1
    """
    killed = [rank for rank, failure in failures.items() if failure.exitcode < 0]
    rank = min(killed or failures, key=lambda r: failures[r].timestamp)
    return rank, failures[rank]


def launch(argv: list[str], nproc: int) -> None:
    """Run ``flowmatch`` with ``argv`` (less ``--nproc``) in ``nproc`` processes here.

    Each process gets a share of the CPU cores (``OMP_NUM_THREADS``, unless set). Returns
    when all processes have finished.

    Raises:
        JobFailed: a process failed (the first to fail is named) or the job was stopped by
            a signal (exit status 130; the processes said where they stopped).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ[LAUNCHED_ENV] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    for name in list(logging.root.manager.loggerDict):  # torchrun's reports: one line here
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "-m", "flowmatch", *without_nproc(argv)]
    )
    try:
        run(config)
    except ChildFailedError as exc:
        rank, failure = cause(exc.failures)
        if failure.exitcode < 0:  # killed by a signal: it could not say why
            name = signal.Signals(-failure.exitcode).name
            raise JobFailed(
                f"rank {rank} (pid {failure.pid}) was killed by {name}; the job was stopped "
                "(its last checkpoint is kept: continue with --resume)"
            ) from None
        raise JobFailed(f"rank {rank} failed", failure.exitcode, quiet=True) from None
    except SignalException as exc:  # Ctrl-C or SIGTERM: the processes checkpointed and said so
        raise JobFailed(f"stopped by {signal.Signals(exc.sigval).name}", 130, quiet=True) from None
