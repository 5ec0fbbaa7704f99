"""The model and batch of the one-step DDP test, shared by the test and its worker."""

from __future__ import annotations

import torch

from flowmatch.flows.continuous import FlowModel
from flowmatch.models import MLPVelocity
from flowmatch.training.batches import Batch

GLOBAL_BATCH = 16


def make_model() -> FlowModel:
    """A small seeded flow (the same on every process)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return FlowModel(MLPVelocity(2, width=16, depth=2), torch.zeros(2), torch.ones(2))


def whole_batch() -> Batch:
    """A fixed batch of GLOBAL_BATCH (x0, x1) pairs."""
    g = torch.Generator().manual_seed(11)
    x0 = torch.randn(GLOBAL_BATCH, 2, generator=g)
    return Batch(x0, x0 + torch.randn(GLOBAL_BATCH, 2, generator=g) + 2.0)
