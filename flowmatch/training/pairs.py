"""Fixed (x0, x1) pairs for reflow and distillation: the pairs file and its cached table."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_points

__all__ = ["PairTable", "load_pairs", "pair_table", "save_pairs"]


@dataclass
class PairTable:
    """N coupled points: row i of ``x0`` (source units) goes with row i of ``x1`` (data units).

    Attributes:
        x0: (N, ...) source points.
        x1: (N, ...) their images at t = 1.
        meta: how the pairs were made (teacher run, seed, solver), JSON-able.
    """

    x0: Tensor
    x1: Tensor
    meta: dict

    def __len__(self) -> int:
        return self.x0.shape[0]


def save_pairs(path: str | Path, x0: Tensor, x1: Tensor, meta: dict | None = None) -> None:
    """Write pairs to an ``.npz`` file atomically (float32 arrays and a JSON string).

    A pairs file is an ``.npz`` archive with two float arrays of one shape (N, ...): ``x0``,
    the source points in the source's units, and ``x1 = ODE(x0)``, the points a trained flow
    carries them to, in data units, and ``meta``, a JSON string. :func:`load_pairs` reads it
    without unpickling anything.
    """
    from flowmatch.storage import write_file

    if x0.shape != x1.shape:
        raise FlowmatchError(f"x0 and x1 must have one shape, got {x0.shape} and {x1.shape}")
    buf = io.BytesIO()
    np.savez(
        buf,
        x0=x0.detach().cpu().float().numpy(),
        x1=x1.detach().cpu().float().numpy(),
        meta=np.array(json.dumps(meta or {})),
    )
    write_file(Path(path), buf.getvalue())


def load_pairs(path: str | Path) -> PairTable:
    """Read a pairs file written by :func:`save_pairs`; one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FlowmatchError(f"pairs file {path} does not exist; make one with flowmatch reflow")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise FlowmatchError(
                f"{path} holds a single array, not a pairs file (an .npz archive of x0 and x1)"
            )
        with f:
            missing = [name for name in ("x0", "x1") if name not in f.files]
            if missing:
                raise FlowmatchError(
                    f"{path} is not a pairs file: it has no array {' or '.join(missing)} (a "
                    "pairs file is an .npz archive of x0 and x1, as flowmatch reflow writes)"
                )
            x0, x1 = torch.from_numpy(f["x0"]), torch.from_numpy(f["x1"])
            meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
    except FlowmatchError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise FlowmatchError(f"{path} is not a readable pairs file ({exc})") from None
    if not isinstance(meta, dict):
        raise FlowmatchError(f"{path}: its meta is not a JSON object; the file is corrupt")
    if x0.shape != x1.shape or x0.ndim < 2 or len(x0) < 1:
        raise FlowmatchError(
            f"{path}: x0 and x1 must have one shape (N, D) with N >= 1, "
            f"got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    check_points(x0.float(), f"{path} x0")
    check_points(x1.float(), f"{path} x1")
    return PairTable(x0.float(), x1.float(), meta)


@lru_cache(maxsize=4)
def _cached_pairs(path: str, mtime_ns: int) -> PairTable:
    return load_pairs(path)


def pair_table(path: str) -> PairTable:
    """:func:`load_pairs`, cached per file version so a training loop reads the file once."""
    p = Path(path)
    if not p.is_file():
        raise FlowmatchError(f"pairs file {p} does not exist; make one with flowmatch reflow")
    return _cached_pairs(str(p.resolve()), p.stat().st_mtime_ns)
