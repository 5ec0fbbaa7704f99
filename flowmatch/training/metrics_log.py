"""The metrics log of a run (metrics.jsonl): never the reason a run is lost.

A kill or a full disk can tear the last line; readers drop unreadable lines with one
warning, and a log that cannot be written is a warning too, never the end of a run.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import IO, Any

from flowmatch.storage import atomic_write, os_error_reason

__all__ = ["MetricsLog", "RunFolderWarning", "read_metrics", "truncate_metrics"]


class RunFolderWarning(UserWarning):
    """Something in a run folder was damaged and was skipped or repaired (one line)."""


def warn(message: str) -> None:
    """Warn once, in one line, about a run folder."""
    warnings.warn(message, RunFolderWarning, stacklevel=3)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics log; unreadable lines (a torn last line) are dropped with a warning.

    A row is a JSON object with an integer ``step``. A missing file has no rows.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    rows, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        step = row.get("step") if isinstance(row, dict) else None
        if isinstance(step, int) and not isinstance(step, bool):
            rows.append(row)
        else:
            bad.append(number)
    if bad:
        where = "the last line" if bad == [number] else f"line(s) {_listing(bad)}"
        warn(
            f"{path}: dropped {len(bad)} unreadable line(s) ({where}; a kill or a full disk "
            "cuts a line short)"
        )
    return rows


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep the readable rows of steps <= ``step``, so a continued log has no duplicates."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in read_metrics(path) if r["step"] <= step]
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in keep).encode())


class MetricsLog:
    """Appends rows to a run's metrics.jsonl, from the step the run continues from.

    Opening drops the rows past ``step`` (a resumed run logs them again) and unreadable
    lines. A failure to write is one warning, after which the run goes on without a log.

    Args:
        path: the log file.
        step: the step the run continues from.
    """

    def __init__(self, path: str | Path, step: int) -> None:
        self.path = Path(path)
        self.file: IO[str] | None = None
        try:
            truncate_metrics(self.path, step)
            self.file = self.path.open("a")
        except OSError as exc:
            self._fail(exc)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (flushed, so a reader sees it at once)."""
        if self.file is None:
            return
        try:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        warn(
            f"cannot write the metrics log {self.path} ({os_error_reason(exc, self.path)}); "
            "training goes on without it"
        )
        self.close()

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):  # a last row left unwritten is a torn line
                self.file.close()
            self.file = None


def _listing(numbers: list[int], most: int = 5) -> str:
    shown = ", ".join(str(n) for n in numbers[:most])
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")
