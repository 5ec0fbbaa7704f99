"""Writing files so that a failure at any moment leaves the old file or the new one, never half."""

from __future__ import annotations

import errno
import os
import re
import secrets
import tempfile
from pathlib import Path

from flowmatch.errors import FlowmatchError

__all__ = [
    "StorageError",
    "atomic_write",
    "dangling_symlink",
    "format_size",
    "os_error_reason",
    "remove_temp_files",
    "temp_files",
    "write_file",
    "write_new",
]

TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
"""The names :func:`atomic_write` gives its temporary files: ``.<name>.<8 random>.tmp``."""


class StorageError(FlowmatchError):
    """A file could not be written or read (full disk, read-only folder, missing folder...)."""


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file(path: str | Path, data: bytes) -> None:
    """:func:`atomic_write`, with an ``OSError`` turned into a one-line :class:`StorageError`
    saying where and why (and, for a full disk, how much space the file needed)."""
    try:
        atomic_write(path, data)
    except OSError as exc:
        reason = os_error_reason(exc, path, len(data))
        raise StorageError(f"cannot write {path}: {reason}") from None


def temp_files(folder: str | Path) -> list[Path]:
    """The temporary files of :func:`atomic_write` in ``folder``: left there by a process
    killed mid-write, since a live write removes its own."""
    try:
        return sorted(p for p in Path(folder).iterdir() if TEMP_NAME.match(p.name))
    except OSError:
        return []


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed writes left in ``folder``; return them.

    Only call this while no other process writes into ``folder`` (hold its lock).
    """
    removed = []
    for p in temp_files(folder):
        try:
            p.unlink()
            removed.append(p)
        except OSError:  # gone already, or a read-only folder: harmless either way
            pass
    return removed


def format_size(nbytes: int) -> str:
    """``nbytes`` for people.

    Example:
        >>> format_size(512), format_size(3 * 2**20), format_size(5 * 2**30)
        ('512 B', '3 MiB', '5 GiB')
    """
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} B"


def dangling_symlink(path: str | Path) -> str | None:
    """The target of ``path`` if it is a symlink to nothing, else None."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return os.readlink(path)
    return None


def os_error_reason(exc: OSError, path: str | Path, nbytes: int | None = None) -> str:
    """Why an operation on ``path`` failed, in a few words for a one-line message.

    Args:
        exc: the error.
        path: the file or folder the operation was on.
        nbytes: the size of what was being written, said for a full disk.

    Example:
        >>> os_error_reason(OSError(errno.ENOSPC, "No space"), "run/x", 3 * 2**20)
        'no space left on the device (it needs about 3 MiB)'
    """
    path = Path(path)
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on the device" if code == errno.ENOSPC else "disk quota exceeded"
        return what + (f" (it needs about {format_size(nbytes)})" if nbytes else "")
    if code == errno.EROFS:
        return "the file system is read-only"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    for p in (path, *path.parents):
        target = dangling_symlink(p)
        if target is not None:
            return f"{p} is a symlink to {target}, which does not exist"
    if code == errno.ENOENT:
        missing = next((p for p in path.parents if not p.exists()), path.parent)
        return f"the folder {missing} does not exist (was it removed?)"
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        return f"{blocker} is a file, not a folder"
    return exc.strerror or str(exc) or type(exc).__name__


_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}
"""What ``link`` raises where a file system has no hard links."""


def write_new(path: str | Path, data: bytes) -> Path:
    """Create the file ``path`` holding ``data``, never replacing a file, even one created
    while this runs; readers see no file or the whole file, never half.

    The data goes to a hidden temporary file next to ``path`` (fsynced, with the umask's
    permissions), which is then hard-linked to ``path``: the link fails if anything (a file,
    a folder, a dangling symlink) took the name meanwhile, so of two writers racing for one
    name exactly one wins. On a file system without hard links the file is created with
    ``O_EXCL`` and written in place (still exclusive, but a crash can leave half of it).

    Args:
        path: the file to create; its folder must exist.
        data: the bytes to write.

    Returns:
        ``path``.

    Raises:
        FileExistsError: if ``path`` exists (whatever it is); nothing is written.
        OSError: on any other failure, with ``filename`` set to ``path``; nothing is left.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     p = write_new(Path(tmp) / "a.txt", b"first")
        ...     try:
        ...         write_new(p, b"second")
        ...     except FileExistsError:
        ...         print(p.read_bytes())
        b'first'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # the TEMP_NAME pattern
    try:
        _write_exclusive(tmp, data)
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            _write_exclusive(path, data)  # no hard links here (FAT, some network shares)
    except OSError as exc:
        exc.filename, exc.filename2 = str(path), None  # the name the caller knows, not tmp's
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` (failing if it exists), write ``data``, fsync; remove it on failure."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 minus the umask
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
