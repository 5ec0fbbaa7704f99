"""Training batches: the data draw, the source draw and their coupling, from one generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from flowmatch.couplings import get_coupling, pair_in_blocks
from flowmatch.data import Dataset
from flowmatch.training.config import TrainConfig
from flowmatch.training.pairs import pair_table

__all__ = [
    "OT_CHUNK_STEPS",
    "Batch",
    "BatchSource",
    "ChunkedBatches",
    "CoupledBatches",
    "DataBatches",
    "PairTableBatches",
    "batch_source",
    "chunk_steps",
]


@dataclass(slots=True)
class Batch:
    """One training step's samples, in the model's standardized units.

    Attributes:
        x0: (B, ...) source points, row i coupled with row i of ``x1``; None for the
            likelihood methods (``cnf``, ``planar``), which draw no source points.
        x1: (B, ...) data.
        cond: (B,) class labels or (B, d) condition vectors of ``x1``; None unless the run
            is conditional.
    """

    x0: Tensor | None
    x1: Tensor
    cond: Tensor | None = None


class BatchSource(Protocol):
    """Where a training loop gets its batches: ``batch = source.next()``.

    A source owns its ``generator``, the run's only source of randomness: the loss draws its
    own (times, probes) from it after each batch. Its state is per instance, so each process
    of a multi-process run can hold its own source with a generator seeded for it.
    """

    generator: torch.Generator

    def next(self) -> Batch:
        """The batch of the next step."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to draw the same batches: ``generator`` (its state) and
        ``drawn`` (batches drawn so far), plus ``chunk_generator`` and ``chunk_start`` for
        :class:`ChunkedBatches`."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        ...


class DataBatches:
    """Batches of data alone (``x0`` is None): what the likelihood methods train on.

    Args:
        dataset: the training data.
        model: the model being trained; its standardization puts the data in its units.
        batch_size: B, rows per batch.
        generator: the source of every draw.
        conditional: keep the data's conditions in ``Batch.cond`` (else they are dropped).
    """

    def __init__(
        self,
        dataset: Dataset,
        model: nn.Module,
        batch_size: int,
        generator: torch.Generator,
        conditional: bool = False,
    ) -> None:
        self.dataset, self.model, self.batch_size = dataset, model, batch_size
        self.generator, self.conditional = generator, conditional
        self.device = model.device
        dataset.to_device(self.device)  # stored rows cross once; batches are indexed there
        self.drawn = 0  # batches drawn so far, i.e. the step of the next one
        # mean 0, std 1 (--no-standardize) and no logit map: the data are in the model's units
        plain = getattr(model, "logit", None) is None and bool(
            (model.data_mean == 0).all() and (model.data_std == 1).all()
        )
        self.to_units = (lambda x: x) if plain else model.standardize

    def next(self) -> Batch:
        x1, cond = self.draw_data(self.batch_size)
        self.drawn += 1
        return Batch(None, x1, cond)

    def draw_data(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """n data rows in the model's units, (n, ...), and their conditions or None."""
        x1, cond = self.dataset.sample_batch(n, generator or self.generator)
        x1 = self.to_units(x1.to(self.device))
        return x1, (cond.to(self.device) if self.conditional else None)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.drawn = int(state["drawn"])


class CoupledBatches(DataBatches):
    """Data x1, then x0 drawn from the model's source and paired with x1 by a coupling.

    An exact coupling (``ot``, ``class-ot``: ``blockwise`` couplings) solves its problem on blocks
    of ``ot_batch`` rows (the whole batch when 0; see :func:`~flowmatch.couplings.pair_in_blocks`):
    exact OT costs about O(k^3) per block. In a pilot on N -> 8gaussians and N -> scurve
    (docs/benchmarks.md, "Against torchcfm and flow_matching"), blocks of 64 rows trained flows as
    straight and as accurate as whole batches of 256, in a third of the time. Given class labels,
    ``ot``, ``sinkhorn`` and ``class-ot`` pair only within each class.

    Args:
        dataset, model, batch_size, generator, conditional: as for :class:`DataBatches`.
        coupling: a name in :data:`~flowmatch.couplings.COUPLINGS`.
        ot_batch: rows per block of an exact coupling (0: the whole batch).
    """

    def __init__(
        self,
        dataset: Dataset,
        model: nn.Module,
        batch_size: int,
        generator: torch.Generator,
        conditional: bool = False,
        *,
        coupling: str = "independent",
        ot_batch: int = 0,
    ) -> None:
        super().__init__(dataset, model, batch_size, generator, conditional)
        self.coupling = get_coupling(coupling)
        self.block = ot_batch if getattr(self.coupling, "blockwise", False) else 0

    def next(self) -> Batch:
        x1, cond = self.draw_data(self.batch_size)
        x0, x1 = self.couple(x1, cond)
        self.drawn += 1
        return Batch(x0, x1, cond)

    def couple(
        self, x1: Tensor, cond: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw x0 (B, ...) from the model's source and pair it with the data x1 (B, ...)."""
        generator = generator or self.generator
        x0 = self.model.noise(x1.shape[0], generator).to(x1.device)  # (B, ...)
        return pair_in_blocks(self.coupling, x0, x1, cond, block=self.block, generator=generator)


OT_CHUNK_STEPS = 16
"""Steps of an exact-OT run whose batches are drawn and coupled together (see
:func:`chunk_steps`)."""


def chunk_steps(cfg: TrainConfig, conditional: bool, batch_size: int | None = None) -> int:
    """How many steps' batches a run draws and couples at once: 1 (every step) or
    ``OT_CHUNK_STEPS``.

    An exact coupling solved on blocks of ``--ot-batch`` rows makes B / k small assignment problems
    a step. Set up one step at a time inside the training loop, their conversions and solver calls
    run several times slower than alone (the network's work evicts them from the caches); drawn for
    many steps at once they cost less than half as much a step (docs/benchmarks.md, "Small per-step
    costs"). The pairs are the same coupling: every batch is still independent draws of x0 and x1,
    coupled in blocks that lie inside the batch. Only unconditional flow-matching runs on drawn
    noise whose batch is a multiple of the block qualify; the rest draw one step at a time.
    ``batch_size`` is the rows one process draws (default ``cfg.batch_size``).
    """
    b, k = batch_size or cfg.batch_size, cfg.ot_batch
    blockwise = getattr(get_coupling(cfg.coupling), "blockwise", False)
    if cfg.method != "fm" or cfg.pairs or conditional or not blockwise:
        return 1
    return OT_CHUNK_STEPS if 0 < k < b and b % k == 0 else 1


class ChunkedBatches(CoupledBatches):
    """:class:`CoupledBatches` of an exact coupling, drawn and coupled ``steps`` at a time.

    Every ``steps`` batches, x1 is drawn for all of them, then x0, and the steps * B rows are
    coupled as one batch: no block straddles two batches, since B is a multiple of the
    block. Batch i of the chunk is rows [i B, (i + 1) B). The generator state the chunk was
    drawn from is kept, so a run resumed inside a chunk draws it again and goes on exactly
    as an uninterrupted one.

    Args:
        dataset, model, batch_size, generator, coupling, ot_batch: as for
            :class:`CoupledBatches` (unconditional).
        steps: batches per chunk.
    """

    def __init__(
        self,
        dataset: Dataset,
        model: nn.Module,
        batch_size: int,
        generator: torch.Generator,
        *,
        coupling: str,
        ot_batch: int,
        steps: int = OT_CHUNK_STEPS,
    ) -> None:
        super().__init__(
            dataset, model, batch_size, generator, coupling=coupling, ot_batch=ot_batch
        )
        self.steps = steps
        self.pairs: tuple[Tensor, Tensor] | None = None  # (x0, x1), steps * B rows each
        self.chunk_start = 0  # the step of the chunk's first batch
        self.chunk_generator: Tensor | None = None  # the generator state it was drawn from

    def next(self) -> Batch:
        i = self.drawn - self.chunk_start
        if self.pairs is None or not 0 <= i < self.steps:
            self.chunk_start, self.chunk_generator, i = self.drawn, self.generator.get_state(), 0
            self.pairs = self.draw_chunk(self.generator)
        b = self.batch_size
        x0, x1 = self.pairs
        self.drawn += 1
        return Batch(x0[i * b : (i + 1) * b], x1[i * b : (i + 1) * b])

    def draw_chunk(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x0 and x1, (steps * B, ...) each, coupled in blocks."""
        x1, _ = self.draw_data(self.steps * self.batch_size, generator)
        return self.couple(x1, None, generator)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "chunk_generator": self.chunk_generator,
            "chunk_start": self.chunk_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pairs, self.chunk_generator = None, state.get("chunk_generator")
        if self.chunk_generator is None:
            return
        self.chunk_start = int(state["chunk_start"])
        if 0 <= self.drawn - self.chunk_start < self.steps:  # resumed inside the chunk
            again = torch.Generator().set_state(self.chunk_generator)
            self.pairs = self.draw_chunk(again)


class PairTableBatches(DataBatches):
    """Rows of a fixed pair table (``--pairs``: reflow, distillation), drawn uniformly with
    replacement; the fixed pairs are the coupling.

    Args:
        dataset, model, batch_size, generator: as for :class:`DataBatches` (unconditional).
        pairs: the pairs file (see :mod:`flowmatch.training.pairs`).
    """

    def __init__(
        self,
        dataset: Dataset,
        model: nn.Module,
        batch_size: int,
        generator: torch.Generator,
        *,
        pairs: str,
    ) -> None:
        super().__init__(dataset, model, batch_size, generator)
        self.table = pair_table(pairs)

    def next(self) -> Batch:
        b, g = self.batch_size, self.generator
        self.dataset.sample_batch(b, g)  # unused: keeps the random stream of earlier releases
        idx = torch.randint(len(self.table), (b,), generator=g)  # (B,)
        x0 = self.model.source.standardize(self.table.x0[idx].to(self.device))
        x1 = self.model.standardize(self.table.x1[idx].to(self.device))
        self.drawn += 1
        return Batch(x0.reshape(x1.shape), x1)


def batch_source(
    cfg: TrainConfig,
    dataset: Dataset,
    model: nn.Module,
    generator: torch.Generator,
    *,
    coupled: bool,
    conditional: bool,
    batch_size: int | None = None,
) -> BatchSource:
    """The batch source of a run.

    Args:
        cfg: the run's configuration (``batch_size``, ``pairs``, ``coupling``, ``ot_batch``).
        dataset: the training data.
        model: the model being trained, on its device.
        generator: the source of every draw (a multi-process run seeds one per process).
        coupled: the method trains on (x0, x1) pairs (flow matching, distillation).
        conditional: the run is conditional (the batches carry the data's conditions).
        batch_size: rows per batch of this process (default ``cfg.batch_size``; a process of
            a job of W draws ``cfg.batch_size / W``).

    Returns:
        :class:`DataBatches` for the likelihood methods, :class:`PairTableBatches` with
        ``cfg.pairs``, :class:`ChunkedBatches` where :func:`chunk_steps` allows, else
        :class:`CoupledBatches`.
    """
    batch_size = batch_size or cfg.batch_size
    args = (dataset, model, batch_size, generator)
    if not coupled:
        return DataBatches(*args, conditional)
    if cfg.pairs:
        return PairTableBatches(*args, pairs=cfg.pairs)
    coupling = {"coupling": cfg.coupling, "ot_batch": cfg.ot_batch}
    steps = chunk_steps(cfg, conditional, batch_size)
    if steps > 1:
        return ChunkedBatches(*args, steps=steps, **coupling)
    return CoupledBatches(*args, conditional, **coupling)
