"""The lock of a run folder: one process at a time trains (or resumes) a run."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from flowmatch.errors import FlowmatchError
from flowmatch.storage import StorageError, os_error_reason

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None

__all__ = ["LOCK_FILE", "RunLock", "RunLocked"]

LOCK_FILE = ".lock"


class RunLocked(FlowmatchError):
    """Another process holds the lock of the run folder."""


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``, held while a run is written.

    The lock file names its holder (pid, host, start time) for the message a second writer
    gets, and is removed on release. The kernel drops the lock of a killed process, so a
    stale ``.lock`` never blocks anyone. Use it as a context manager around everything
    that writes into the folder.

    Args:
        run_dir: the run folder, which must exist.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d, RunLock(d):
        ...     RunLock(d).acquire()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        flowmatch.training.lock.RunLocked: ... is in use by pid ... on ...; wait for it ...
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLocked` naming the holder.

        An interruption (Ctrl-C) at any point leaves no lock and no open file behind.
        """
        if fcntl is None:
            return self
        for _ in range(10):  # retried only if the holder removed the file as we opened it
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StorageError(
                    f"cannot lock the run folder {self.run_dir}: {os_error_reason(exc, self.path)}"
                ) from None
            try:
                if self._take(fd):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # we locked a file its holder had just removed: take the new one
        else:
            raise RunLocked(f"{self.run_dir} is in use by another process (its lock keeps moving)")
        self.fd = fd
        try:
            note = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(note).encode(), 0)
        except OSError:
            pass  # the lock holds without the note; a second writer just hears less
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, fd: int) -> bool:
        """Lock ``fd``; False if its file is no longer the lock file (removed meanwhile)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunLocked(
                f"{self.run_dir} is in use by {_read_holder(fd)}; wait for it to finish or stop it"
            ) from None
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and drop the lock (removing first: nobody locks it after)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """'pid N on host H' from a lock file, or 'another process' if it says nothing."""
    try:
        note = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {int(note['pid'])} on {note['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
