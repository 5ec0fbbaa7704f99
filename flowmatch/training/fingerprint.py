"""Fingerprints (size and SHA-256) of the files a run trains on, checked when it resumes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flowmatch.errors import FlowmatchError

__all__ = ["FINGERPRINTED", "check_fingerprints", "file_fingerprint", "run_fingerprints"]

FINGERPRINTED = ("data", "source", "pairs")
"""The config fields naming a file whose bytes a run's batches come from."""


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def run_fingerprints(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fingerprints of a resolved config's files (data, source, pairs); built-in data sets
    and sources have none.

    Args:
        config: the resolved config as a dict (file fields hold absolute paths).

    Returns:
        Field -> ``{"path", "bytes", "sha256"}``, for the fields naming a file.
    """
    from flowmatch.data import DATASETS
    from flowmatch.data.sources import SOURCES

    found = {}
    for name in FINGERPRINTED:
        value = config.get(name)
        if not value or value in DATASETS or value in SOURCES or not Path(value).is_file():
            continue
        found[name] = {"path": value, **file_fingerprint(value)}
    return found


def check_fingerprints(record: dict[str, Any], allow_change: bool = False) -> list[str]:
    """Refuse to resume a run whose files changed since it started (one line naming the file).

    A run folder of an earlier release has no fingerprints and passes. A missing file is
    left to the data loader, which says so.

    Args:
        record: the run's record (config.json), with its ``fingerprints`` entry if any.
        allow_change: go on with the files as they are now; the record's fingerprints are
            then updated in ``record`` (the caller saves it).

    Returns:
        The fields whose file changed (empty unless ``allow_change``).
    """
    saved = record.get("fingerprints")
    if saved is None:
        return []
    if not isinstance(saved, dict):
        raise FlowmatchError("the run's fingerprints entry is not a JSON object; it is corrupt")
    changed = []
    for name, old in saved.items():
        if not (isinstance(old, dict) and isinstance(old.get("path"), str)):
            raise FlowmatchError(f"the run's fingerprint of its {name} file is corrupt")
        path = Path(old["path"])
        if not path.is_file():
            continue
        size = path.stat().st_size
        new = {"path": old["path"], "bytes": size}
        if size == old.get("bytes"):
            new = {"path": old["path"], **file_fingerprint(path)}
            if new["sha256"] == old.get("sha256"):
                continue
        if not allow_change:
            how = (
                f"{old.get('bytes')} bytes then, {size} now"
                if size != old.get("bytes")
                else "same size, other bytes"
            )
            raise FlowmatchError(
                f"the {name} file {path} changed since the run started ({how}); resuming "
                "would train on other data: restore it, or allow the change "
                "(allow_data_change=True, --allow-data-change)"
            )
        if "sha256" not in new:
            new = {"path": old["path"], **file_fingerprint(path)}
        saved[name] = new
        changed.append(name)
    return changed
