"""Fixed (x0, x1) pairs for reflow and distillation, and the batch draw of flow-matching methods.

A pairs file is an ``.npz`` archive with two float arrays of one shape (N, ...): ``x0``, the
source points in the source's units, and ``x1 = ODE(x0)``, the points a trained flow carries
them to, in data units. It is written by :func:`save_pairs` and read (never unpickled) by
:func:`load_pairs`.
"""

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

__all__ = ["PairTable", "draw_batch", "load_pairs", "save_pairs"]


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
    """Write pairs to an ``.npz`` file atomically (float32 arrays and a JSON string)."""
    from flowmatch.storage import atomic_write

    if x0.shape != x1.shape:
        raise FlowmatchError(f"x0 and x1 must have one shape, got {x0.shape} and {x1.shape}")
    buf = io.BytesIO()
    np.savez(
        buf,
        x0=x0.detach().cpu().float().numpy(),
        x1=x1.detach().cpu().float().numpy(),
        meta=np.array(json.dumps(meta or {})),
    )
    atomic_write(Path(path), buf.getvalue())


def load_pairs(path: str | Path) -> PairTable:
    """Read a pairs file written by :func:`save_pairs`; one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FlowmatchError(f"pairs file {path} does not exist; make one with flowmatch reflow")
    try:
        with np.load(path, allow_pickle=False) as f:
            x0, x1 = torch.from_numpy(f["x0"]), torch.from_numpy(f["x1"])
            meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
    except KeyError as exc:
        raise FlowmatchError(f"{path} is not a pairs file (no array {exc})") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise FlowmatchError(f"{path} is not a readable pairs file ({exc})") from None
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


def draw_batch(
    model, x1: Tensor, generator: torch.Generator, cfg, cond: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The (x0, x1) training batch of a flow-matching method, in standardized units.

    Without ``cfg.pairs``: x0 is drawn from the model's source and paired with the data batch
    ``x1`` (B, ...) by ``cfg.coupling``. With ``cfg.pairs`` (reflow, distillation): B rows of the
    fixed pair table are drawn uniformly with replacement and replace the loop's data batch, so
    the fixed pairs are the coupling. All randomness comes from ``generator``.

    Args:
        model: the :class:`~flowmatch.flows.continuous.FlowModel` being trained.
        x1: (B, ...) standardized data batch.
        generator: the training generator.
        cfg: the run's :class:`~flowmatch.training.config.TrainConfig`.
        cond: conditions of the data rows, (B,) or (B, d), passed to the coupling:
            ``ot``, ``sinkhorn`` and ``class-ot`` given class labels pair only within each
            class (and refuse continuous conditions); ``independent`` ignores it.

    An exact coupling (``ot``, ``class-ot``: ``blockwise`` couplings) solves its problem on
    blocks of ``cfg.ot_batch`` rows (the whole batch when 0; see
    :func:`~flowmatch.couplings.pair_in_blocks`): exact OT costs about O(k^3) per block. In
    a pilot on N -> 8gaussians and N -> scurve (README, "Against torchcfm"), blocks of 64 rows
    trained flows as straight and as accurate as whole batches of 256, in a third of the time.

    Returns:
        x0 and x1, both (B, ...), standardized, on x1's device.
    """
    from flowmatch.couplings import get_coupling, pair_in_blocks

    b = x1.shape[0]
    if cfg.pairs:
        if cond is not None:
            raise FlowmatchError(
                "--pairs tables carry no conditions; train on them with --no-conditional"
            )
        table = pair_table(cfg.pairs)
        idx = torch.randint(len(table), (b,), generator=generator)  # (B,)
        x0 = model.source.standardize(table.x0[idx].to(x1.device))
        x1 = model.standardize(table.x1[idx].to(x1.device))
        return x0.reshape(x1.shape), x1
    x0 = model.noise(b, generator).to(x1.device)  # (B, ...)
    coupling = get_coupling(cfg.coupling)
    block = cfg.ot_batch if getattr(coupling, "blockwise", False) else 0
    return pair_in_blocks(coupling, x0, x1, cond, block=block, generator=generator)


OT_CHUNK_STEPS = 16
"""Steps of an exact-OT run whose batches are drawn and coupled together (see
:func:`chunk_steps`)."""


def chunk_steps(cfg, conditional: bool) -> int:
    """How many steps' batches a run draws and couples at once: 1 (every step) or
    ``OT_CHUNK_STEPS``.

    An exact coupling solved on blocks of ``--ot-batch`` rows makes B / k small assignment
    problems a step. Set up one step at a time inside the training loop, their conversions
    and solver calls cost ~0.65 ms of a ~4 ms step (256 rows in blocks of 16, 128x3 MLP, one
    CPU thread: the network's work evicts them from the caches); drawn for 16 steps at once
    they cost ~0.25 ms a step. The pairs are the same coupling: every batch is still
    independent draws of x0 and x1, coupled in blocks that lie inside the batch. Only
    unconditional flow-matching runs on drawn noise whose batch is a multiple of the block
    qualify; the rest draw one step at a time.
    """
    from flowmatch.couplings import get_coupling

    b, k = cfg.batch_size, cfg.ot_batch
    blockwise = getattr(get_coupling(cfg.coupling), "blockwise", False)
    if cfg.method != "fm" or cfg.pairs or conditional or not blockwise:
        return 1
    return OT_CHUNK_STEPS if 0 < k < b and b % k == 0 else 1


def draw_chunk(
    model, dataset, generator: torch.Generator, cfg, steps: int, to_units
) -> tuple[Tensor, Tensor]:
    """``steps`` training batches at once: x0 and x1, (steps * B, ...) each, coupled in blocks.

    x1 is drawn from ``dataset`` and put in the model's units by ``to_units``, then
    :func:`draw_batch` draws x0 and couples the steps * B rows as one batch: row r of x0 goes
    with row r of x1 within the block of ``cfg.ot_batch`` rows holding r, and no block
    straddles two batches, since the batch is a multiple of the block. Batch i is rows
    [i B, (i + 1) B).
    """
    x1, _ = dataset.sample_batch(steps * cfg.batch_size, generator)
    return draw_batch(model, to_units(x1.to(model.device)), generator, cfg)
