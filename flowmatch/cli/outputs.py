"""Where the ``flowmatch`` commands write: checked paths, files created once, run folders kept.

Every output is checked before any work (its suffix, that it does not exist, that its folder
does, and that it is not inside a run folder, except the files a run documents as its own:
``eval.json``, ``plots/``, ``pairs/`` and ``report.html``), and is then created with
:func:`flowmatch.storage.write_new`, which never replaces a file, even one that another command
created meanwhile. A failure is one line naming the path and what went wrong, and leaves
nothing behind.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmatch.errors import FlowmatchError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "check_output",
    "check_output_folder",
    "check_run_out",
    "npy_bytes",
    "os_error_message",
    "run_folder_of",
    "save_json",
    "save_npy",
    "write_outputs",
]


# -- checks -----------------------------------------------------------------------------------
def check_output(
    path: Path, *suffixes: str, flag: str = "--out", in_run: Collection[str] = ()
) -> None:
    """Refuse an output file with another suffix, one that exists (a dangling symlink too), one
    whose folder is missing or not writable, or one inside a run folder but not in ``in_run``.

    Args:
        path: the output file.
        suffixes: the suffixes allowed (lower case, with the dot).
        flag: the flag that named it, for the message.
        in_run: the paths relative to a run folder that this output may take (patterns of
            :mod:`fnmatch`, e.g. ``"eval.json"``); none by default.

    Example:
        >>> check_output(Path("samples.txt"), ".npy")
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: --out must end in .npy, got samples.txt
    """
    if path.suffix.lower() not in suffixes:
        raise FlowmatchError(f"{flag} must end in {' or '.join(suffixes)}, got {path}")
    _check_not_a_link_to_nothing(path, flag)
    if os.path.lexists(path):
        raise FlowmatchError(f"{path} already exists; remove it or choose another {flag}")
    _check_folder(path.parent, flag)
    _check_not_in_a_run(path, flag, in_run)


def check_output_folder(folder: Path, flag: str = "--out", in_run: Collection[str] = ()) -> None:
    """Refuse an output folder that is a file, a dangling symlink, below a file or an
    unwritable folder, or inside a run folder but not in ``in_run``; it need not exist yet.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     check_output_folder(Path(f.name))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        flowmatch.errors.FlowmatchError: --out ... is a file, not a folder; choose a folder
    """
    _check_not_a_link_to_nothing(folder, flag)
    if folder.exists():
        if not folder.is_dir():
            raise FlowmatchError(f"{flag} {folder} is a file, not a folder; choose a folder")
        _check_folder(folder, flag)
    else:  # created when the first file is written: its nearest existing folder must allow it
        existing = next(p for p in folder.absolute().parents if os.path.lexists(p))
        _check_folder(existing, flag)
    _check_not_in_a_run(folder, flag, in_run)


def check_run_out(folder: Path, flag: str = "--out") -> None:
    """Refuse a new run folder that is a dangling symlink or lies inside another run folder
    (whether ``folder`` is free is :func:`~flowmatch.training.checkpoint.check_new_run_dir`'s
    to say)."""
    _check_not_a_link_to_nothing(folder, flag)
    run = run_folder_of(folder.absolute().parent)
    if run is not None:
        raise FlowmatchError(
            f"{flag} {folder} is inside the run folder {run} (its own files only); "
            "put the new run beside it"
        )


def _check_not_a_link_to_nothing(path: Path, flag: str) -> None:
    if path.is_symlink() and not path.exists():
        raise FlowmatchError(
            f"{flag} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
            f"remove the link or choose another {flag}"
        )


def _check_folder(folder: Path, flag: str) -> None:
    """``folder`` exists, is a folder and can take new files."""
    if not folder.exists():
        link = " (a symbolic link to nothing)" if folder.is_symlink() else ""
        raise FlowmatchError(f"folder {folder}{link} does not exist; create it first")
    if not folder.is_dir():
        raise FlowmatchError(f"{folder} is a file, not a folder; {flag} needs a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FlowmatchError(
            f"folder {folder} is not writable (permission denied); choose another {flag}"
        )


def run_folder_of(path: Path) -> Path | None:
    """The innermost run folder (a folder with a flowmatch ``config.json`` or a checkpoint)
    that holds ``path``, or None; ``path`` itself counts if it is one."""
    from flowmatch.training.checkpoint import CHECKPOINT_FILE, CONFIG_FILE, RUN_FORMAT

    path = path.resolve()  # .. and symlinks resolved, so no spelling slips past
    for folder in (path, *path.parents):
        try:
            if (folder / CHECKPOINT_FILE).exists():
                return folder
            config = folder / CONFIG_FILE
            if config.is_file() and RUN_FORMAT in config.read_text(errors="replace")[:4096]:
                return folder
        except OSError:  # an unreadable folder on the way up: not known to be a run
            continue
    return None


def _check_not_in_a_run(path: Path, flag: str, in_run: Collection[str]) -> None:
    """Refuse ``path`` inside a run folder, unless it is one of that run's own ``in_run``."""
    run = run_folder_of(path)
    if run is None:
        return
    rel = path.resolve().relative_to(run).as_posix()
    if any(fnmatch.fnmatchcase(rel, pattern) for pattern in in_run):
        return
    where = f"where {flag} may only write {' or '.join(in_run)}" if in_run else "its own files only"
    raise FlowmatchError(
        f"{flag} {path} is inside the run folder {run} ({where}); choose a path outside it"
    )


# -- writing ----------------------------------------------------------------------------------
def write_outputs(*files: tuple[Path, bytes]) -> None:
    """Create each ``(path, data)`` with :func:`~flowmatch.storage.write_new`, all or none.

    If a file cannot be created (it appeared meanwhile, the disk is full...), the ones this
    call created are removed again and one line says what failed.
    """
    from flowmatch.storage import write_new

    done: list[Path] = []
    try:
        for path, data in files:
            write_new(path, data)
            done.append(path)
    except OSError as exc:
        for path in done:
            path.unlink(missing_ok=True)
        raise FlowmatchError(os_error_message(exc, writing=True, nbytes=len(data))) from None


def npy_bytes(x: Tensor) -> bytes:
    """``x`` as the bytes of a ``.npy`` file."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, x.detach().cpu().numpy())
    return buf.getvalue()


def save_npy(path: Path, x: Tensor) -> None:
    """Create the ``.npy`` file ``path`` holding ``x``; never replaces a file."""
    write_outputs((path, npy_bytes(x)))


def save_json(path: Path, obj: Any) -> None:
    """Create the JSON file ``path`` holding ``obj``; never replaces a file."""
    write_outputs((path, json.dumps(obj, indent=2).encode()))


def os_error_message(exc: OSError, *, writing: bool = False, nbytes: int | None = None) -> str:
    """One line for an ``OSError``: the path, what failed, and the free space of a full disk.

    Example:
        >>> os_error_message(PermissionError(errno.EACCES, "Permission denied", "/x/a.npy"))
        '/x/a.npy: permission denied'
    """
    from flowmatch.storage import format_size, os_error_reason

    name = exc.filename
    if name is None:
        return f"{exc.strerror or exc or type(exc).__name__} (no file named)"
    path = Path(os.fsdecode(name))
    if isinstance(exc, FileExistsError) and writing:
        return (
            f"{path} appeared while this command ran (another command writing it?); it was "
            "left as it is and nothing was written"
        )
    reason = os_error_reason(exc, path, nbytes)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None:
            reason += f"; {format_size(shutil.disk_usage(existing).free)} free there"
    if writing:
        return f"cannot write {path}: {reason}; nothing was written"
    return f"{path}: {reason}"
