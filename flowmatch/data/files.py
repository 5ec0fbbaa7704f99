"""Loading user data sets from ``.npy``, ``.npz`` and ``.csv`` files into float32 tensors.

Files are treated as untrusted input: pickled objects are never loaded (no code from a file
is ever executed), and every problem, from a missing file to a NaN in line 7, is reported as
one :class:`~flowmatch.errors.FlowmatchError` line that names the file.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import numpy.lib.format as npformat
import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError

__all__ = ["SUPPORTED_EXTENSIONS", "load_array", "npz_arrays"]

# Errors that numpy, zipfile, zlib and the csv module raise on damaged or foreign files.
_READ_ERRORS = (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile, zlib.error)

# Array names tried, in order, when an .npz archive holds more than one array.
_NPZ_KEYS = ("x", "data")

# numpy dtype kinds accepted as numeric: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"
_DTYPE_PROBLEMS = {
    "c": "complex numbers",
    "U": "text",
    "S": "bytes",
    "V": "structured records",
    "M": "dates",
    "m": "time spans",
}


def _read_npy_stream(f: IO[bytes], size: int, label: str) -> np.ndarray:
    """Read one ``.npy`` record from the binary stream ``f`` of ``size`` bytes, never unpickling."""
    try:
        version = npformat.read_magic(f)
        read_header = {
            (1, 0): npformat.read_array_header_1_0,
            (2, 0): npformat.read_array_header_2_0,
        }.get(version)
        if read_header is None:
            raise FlowmatchError(
                f"{label}: uses .npy format version {version[0]}.{version[1]}, which only "
                "structured arrays need; save a plain numeric array with numpy.save"
            )
        shape, _, dtype = read_header(f)
    except FlowmatchError:
        raise
    except _READ_ERRORS as e:
        raise FlowmatchError(
            f"{label}: not a valid .npy array ({_one_line(e)}); re-save it with numpy.save"
        ) from None
    if dtype.hasobject:
        raise FlowmatchError(
            f"{label}: holds Python objects (dtype {dtype}), which only pickle could load and "
            "flowmatch never unpickles files; save a numeric array instead"
        )
    _check_dtype(dtype, label)
    expected = math.prod(shape) * dtype.itemsize
    if expected > size - f.tell():
        raise FlowmatchError(
            f"{label}: truncated, its header announces shape {tuple(shape)} ({expected} bytes) "
            f"but only {size - f.tell()} bytes follow; copy or save the file again"
        )
    try:
        f.seek(0)
        return npformat.read_array(f, allow_pickle=False)
    except _READ_ERRORS as e:
        raise FlowmatchError(
            f"{label}: could not read the array data ({_one_line(e)}); copy or save the file again"
        ) from None


def _load_npy(path: Path, label: str) -> np.ndarray:
    with path.open("rb") as f:
        return _read_npy_stream(f, path.stat().st_size, label)


def _open_npz(path: Path, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except _READ_ERRORS as e:
        raise FlowmatchError(
            f"{label}: not a valid .npz archive ({_one_line(e)}); re-save it with numpy.savez"
        ) from None


def _npz_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's arrays by name, in its order."""
    return {
        i.filename[: -len(".npy")]: i for i in archive.infolist() if i.filename.endswith(".npy")
    }


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> np.ndarray:
    """One array of the archive, read without pickle; ``label`` names it in errors."""
    try:
        with archive.open(info) as f:
            return _read_npy_stream(f, info.file_size, label)
    except FlowmatchError:
        raise
    except _READ_ERRORS as e:
        raise FlowmatchError(
            f"{label}: could not be read from the archive ({_one_line(e)}); "
            "re-save it with numpy.savez"
        ) from None


def _load_npz(path: Path, label: str) -> np.ndarray:
    with _open_npz(path, label) as archive:
        members = _npz_members(archive)
        if not members:
            raise FlowmatchError(f"{label}: the archive holds no arrays; save one with numpy.savez")
        if len(members) == 1:
            (key,) = members
        else:
            key = next((k for k in _NPZ_KEYS if k in members), None)
            if key is None:
                raise FlowmatchError(
                    f"{label}: holds {len(members)} arrays ({', '.join(sorted(members))}) and "
                    f"none is named {' or '.join(repr(k) for k in _NPZ_KEYS)}; keep one array "
                    "or name the data array 'x'"
                )
        return _read_member(archive, members[key], f"{label}[{key!r}]")


def npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive by name, read without pickle.

    Args:
        path: the archive.

    Returns:
        Name -> array, in the archive's order.

    Raises:
        FlowmatchError: one line naming the file (or member) if it is missing, damaged,
            or holds pickled objects or non-numeric values.
    """
    label, p = str(path), Path(path)
    if not p.is_file():
        raise FlowmatchError(f"{label}: no such file; check the path")
    with _open_npz(p, label) as archive:
        return {
            key: _read_member(archive, info, f"{label}[{key!r}]")
            for key, info in _npz_members(archive).items()
        }


def _load_csv(path: Path, label: str) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FlowmatchError(
            f"{label}: not a UTF-8 text file; save the data as comma-separated numbers"
        ) from None
    try:
        records = [
            (reader_line, [c.strip() for c in row])
            for reader_line, row in _csv_rows(text)
            if any(c.strip() for c in row) and not row[0].lstrip().startswith("#")
        ]
    except csv.Error as e:
        raise FlowmatchError(f"{label}: not a readable CSV file ({_one_line(e)})") from None
    if not records:
        raise FlowmatchError(f"{label}: holds no data rows; add at least one row of numbers")

    first_line, first = records[0]
    for line, cells in records:
        if len(cells) != len(first):
            raise FlowmatchError(
                f"{label}: line {line} has {len(cells)} values but line {first_line} has "
                f"{len(first)}; give every row the same number of comma-separated values"
            )

    header = first if any(not _is_number(c) for c in first) else None
    body = records[1:] if header is not None else records
    if not body:
        raise FlowmatchError(f"{label}: has a header but no data rows; add rows of numbers")

    values = []
    for line, cells in body:
        try:
            values.append([float(c) for c in cells])
        except ValueError:
            col = next(j for j, c in enumerate(cells) if not _is_number(c))
            name = f" ({header[col]!r})" if header is not None else ""
            what = "is empty" if not cells[col] else f"holds {cells[col]!r}, not a number"
            raise FlowmatchError(
                f"{label}: line {line}, column {col + 1}{name} {what}; "
                "keep only numeric columns and fill in missing values"
            ) from None
    x = np.asarray(values, dtype=np.float64)  # (N, D)
    lines = [line for line, _ in body]
    _check_finite(x, label, lambda i, j: f"line {lines[i]}, column {j + 1}")
    return x


def _csv_rows(text: str):
    """Yield (line number, cells) for each CSV record of ``text``."""
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        yield reader.line_num, row


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _one_line(e: BaseException) -> str:
    """The exception's message squeezed onto one line."""
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg if len(msg) <= 120 else msg[:117] + "..."


def _check_dtype(dtype: np.dtype, label: str) -> None:
    if dtype.kind not in _NUMERIC_KINDS:
        what = _DTYPE_PROBLEMS.get(dtype.kind, "non-numeric values")
        raise FlowmatchError(
            f"{label}: holds {what} (dtype {dtype}), not real numbers; save a numeric array "
            "(integers or floats)"
        )


def _check_finite(x: np.ndarray, label: str, locate: Callable[..., str]) -> None:
    """Raise when ``x`` holds NaN or Inf, saying how many and where the first one is."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    first = np.unravel_index(int(np.flatnonzero(bad)[0]), x.shape)
    n_nan = int(np.isnan(x).sum())
    n_inf = int(bad.sum()) - n_nan
    raise FlowmatchError(
        f"{label}: holds {n_nan} NaN and {n_inf} Inf values, the first at {locate(*first)}; "
        "remove or impute them first"
    )


_LOADERS: dict[str, Callable[[Path, str], np.ndarray]] = {
    ".npy": _load_npy,
    ".npz": _load_npz,
    ".csv": _load_csv,
}

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_LOADERS)


def load_array(path: str | Path, allow_images: bool = False) -> Tensor:
    """Load a data set of N samples from a ``.npy``, ``.npz`` or ``.csv`` file.

    * ``.npy``: one array, loaded without pickle.
    * ``.npz``: the only array in the archive, else the one named ``x``, else ``data``.
    * ``.csv``: comma-separated numbers, one sample per line. The first row is taken as a
      header when any of its cells is not a number. Blank lines and lines starting with
      ``#`` are skipped.

    The first axis indexes samples. A 1-D array becomes shape (N, 1); arrays with more than
    two axes (images) are kept as (N, *shape) only when ``allow_images`` is true. Booleans and
    integers are converted to float32.

    Args:
        path: the file to read.
        allow_images: accept arrays with more than two axes.

    Returns:
        A float32 tensor of shape (N, D), or (N, *shape) with ``allow_images``.

    Raises:
        FlowmatchError: if the file is missing, of an unsupported type, damaged, holds
            pickled objects, non-numeric or non-finite values, ragged CSV rows, no samples,
            or image-shaped data without ``allow_images``.
    """
    if not isinstance(path, (str, Path)):
        raise FlowmatchError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
    label = str(path)
    p = Path(path)
    if not p.exists():
        raise FlowmatchError(f"{label}: no such file; check the path")
    if not p.is_file():
        raise FlowmatchError(f"{label}: not a regular file (a directory?); pass a data file")
    loader = _LOADERS.get(p.suffix.lower())
    if loader is None:
        what = f"unsupported file type {p.suffix!r}" if p.suffix else "no file extension"
        raise FlowmatchError(f"{label}: {what}; use one of {', '.join(SUPPORTED_EXTENSIONS)}")
    try:
        arr = loader(p, label)
    except OSError as e:
        raise FlowmatchError(f"{label}: cannot be read ({_one_line(e)})") from None
    return _to_tensor(arr, label, allow_images)


def _to_tensor(arr: np.ndarray, label: str, allow_images: bool) -> Tensor:
    """Check shape and values of a loaded array and convert it to float32 (N, ...)."""
    _check_dtype(arr.dtype, label)
    if arr.ndim == 0:
        raise FlowmatchError(f"{label}: holds a single number; save an array of shape (N, D)")
    if arr.size == 0:
        raise FlowmatchError(
            f"{label}: is empty (shape {arr.shape}); save at least one sample with one feature"
        )
    if arr.ndim == 1:
        arr = arr[:, None]  # (N,) -> (N, 1)
    if arr.ndim > 2 and not allow_images:
        raise FlowmatchError(
            f"{label}: has shape {arr.shape} ({arr.ndim} axes) but (N, D) is expected; "
            "reshape it to (N, D) or load it as image data"
        )
    _check_finite(arr, label, lambda *i: f"index {tuple(int(k) for k in i)}")
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(arr, dtype=np.float32)
    if not x.flags.writeable:  # arrays read from an archive share a read-only buffer
        x = x.copy()
    if not np.isfinite(x).all():
        raise FlowmatchError(
            f"{label}: values beyond the float32 range (about 3.4e38); rescale the data"
        )
    return torch.from_numpy(x)
