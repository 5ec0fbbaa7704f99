"""Progress reporting: a bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

__all__ = ["LineReporter", "NullReporter", "Reporter", "TqdmReporter", "make_reporter"]


class Reporter(Protocol):
    def start(self, total: int, initial: int) -> None: ...
    def log(self, step: int, metrics: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    """Reports nothing (the default of the Python API)."""

    def start(self, total: int, initial: int) -> None:
        pass

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmReporter:
    """A tqdm bar with loss and steps/s; tqdm itself shows the ETA."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.bar = None

    def start(self, total: int, initial: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, initial=initial, file=self.stream, unit="step", dynamic_ncols=True
        )
        self.last = initial

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.bar.update(step - self.last)
        self.last = step
        self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class LineReporter:
    """One line per log interval, at most every ``min_seconds`` (and always the last one)."""

    def __init__(self, stream: TextIO = sys.stderr, min_seconds: float = 5.0) -> None:
        self.stream = stream
        self.min_seconds = min_seconds

    def start(self, total: int, initial: int) -> None:
        self.total = total
        self.t_last = time.perf_counter() - self.min_seconds

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        now = time.perf_counter()
        if now - self.t_last < self.min_seconds and step < self.total:
            return
        self.t_last = now
        rate = metrics.get("steps_per_s", 0.0)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        print(
            f"step {step}/{self.total}  loss {metrics['loss']:.4f}  "
            f"{rate:.0f} steps/s  eta {eta:.0f}s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        pass


def make_reporter(stream: TextIO = sys.stderr) -> Reporter:
    """A bar when ``stream`` is a terminal, plain lines otherwise."""
    return TqdmReporter(stream) if stream.isatty() else LineReporter(stream)
