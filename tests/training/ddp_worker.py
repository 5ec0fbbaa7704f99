"""One process of a two-process job that takes one DDP step on its half of a fixed batch.

Run with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set (as torchrun does) and
the output folder as the argument. Each rank saves its weights, EMA weights and the averaged
loss to ``OUT/rank<r>.pt`` for the test to compare with one step on the whole batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from flowmatch.training import TrainConfig
from flowmatch.training.distributed import end_job, start_job
from flowmatch.training.ema import EMA
from flowmatch.training.loop import TrainingLoss
from flowmatch.training.optim import make_optimizer, optimizer_step
from tests.training.ddp_step import GLOBAL_BATCH, make_model, whole_batch


def main(out: Path) -> None:
    cfg = TrainConfig(method="distill", distill_steps=2)
    job = start_job("cpu")
    try:
        model = make_model()
        ema = EMA(model, 0.9)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(cfg, params, torch.device("cpu"))
        batch = whole_batch()
        rows = slice(job.rank * GLOBAL_BATCH // 2, (job.rank + 1) * GLOBAL_BATCH // 2)
        batch.x0, batch.x1 = batch.x0[rows], batch.x1[rows]
        from flowmatch.training.methods import METHODS

        loss_fn = job.wrap(TrainingLoss(METHODS[cfg.method](cfg), model))
        loss = loss_fn(batch, torch.Generator())
        optimizer_step(loss, params, optimizer, grad_clip=0.05, ema=ema)
        torch.save(
            {
                "loss": job.mean(loss.detach()),
                "params": [p.detach().clone() for p in params],
                "ema": [p.detach().clone() for p in ema.model.parameters()],
            },
            out / f"rank{job.rank}.pt",
        )
    finally:
        end_job(job)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
