"""Stop signals (SIGINT, SIGTERM, SIGHUP) as a flag the training loop checks between steps."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType

__all__ = ["STOP_SIGNALS", "StopSignals"]

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""Ctrl-C, a polite kill (batch systems, ``docker stop``) and a closed terminal."""

REPEAT_GRACE_S = 1.0
"""A second stop signal within this many seconds of the first is the same request."""


class StopSignals:
    """Catch the stop signals for the length of a ``with`` block.

    With ``defer=True`` (the training loop) the first signal only sets :attr:`signum`, which
    the loop checks between steps, so a step is never cut in half: the loop checkpoints the
    last finished step and stops. A second signal raises :class:`KeyboardInterrupt` at once
    (for a step that does not end), unless it comes within ``REPEAT_GRACE_S`` of the first:
    a Ctrl-C in a terminal reaches both torchrun and its processes, and torchrun then sends
    it on, so one keypress arrives twice. With ``defer=False`` (start-up) every stop signal raises
    :class:`KeyboardInterrupt` at once, as Ctrl-C does, so SIGTERM and SIGHUP clean up too.

    The handlers found are restored on exit. Signals are only caught in the main thread
    (Python delivers them there), and a signal set to be ignored (``nohup``) stays ignored.

    Args:
        defer: set the flag instead of raising.

    Example:
        >>> import os, signal
        >>> with StopSignals() as stop:
        ...     os.kill(os.getpid(), signal.SIGTERM)
        >>> stop.signum == signal.SIGTERM
        True
    """

    def __init__(self, defer: bool = True) -> None:
        self.defer = defer
        self.signum: int | None = None
        self.first = 0.0  # when the first signal came (time.monotonic)
        self.previous: dict[int, object] = {}

    @property
    def name(self) -> str:
        """The caught signal's name (``SIGINT``), or ``""``."""
        return "" if self.signum is None else signal.Signals(self.signum).name

    def _catch(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.defer and self.signum is not None and now - self.first < REPEAT_GRACE_S:
            return  # the same request again
        if not self.defer or self.signum is not None:
            raise KeyboardInterrupt
        self.signum, self.first = signum, now

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in STOP_SIGNALS:
            old = signal.getsignal(sig)
            if old is signal.SIG_IGN:
                continue
            self.previous[sig] = signal.SIG_DFL if old is None else old  # None: set from C
            signal.signal(sig, self._catch)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)
        self.previous = {}
