"""Optimizers and the one optimizer step that every training loop takes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowmatch.training.config import TrainConfig
from flowmatch.training.ema import EMA

__all__ = ["OPTIMIZERS", "clip_grad_norm", "fused_if_supported", "make_optimizer", "optimizer_step"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
"""Optimizer name -> class; the names are the ``--optimizer`` choices."""

FUSED_DEVICES = ("cpu", "cuda")


def fused_if_supported(device: torch.device) -> dict:
    """``fused=True`` for Adam(W) where PyTorch has the one-kernel update (CPU and CUDA).

    The fused update is the same arithmetic in one kernel instead of ~8 small ops per parameter,
    which more than halves a small model's optimizer time (docs/benchmarks.md, "Small per-step
    costs"). It agrees with the per-tensor update to float rounding (~1e-7), so resuming a run
    trained before this default continues it to rounding, not bit for bit.
    """
    return {"fused": True} if device.type in FUSED_DEVICES else {}


def make_optimizer(
    cfg: TrainConfig, params: list[nn.Parameter], device: torch.device
) -> torch.optim.Optimizer:
    """The run's ``--optimizer`` over ``params``, fused where supported."""
    return OPTIMIZERS[cfg.optimizer](
        params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused_if_supported(device)
    )


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> None:
    """Scale the gradients by min(1, max_norm / (||g|| + 1e-6)), ||g|| the norm of all of them.

    The same arithmetic as ``torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)``
    in four multi-tensor calls, without its argument handling, which costs more than the
    arithmetic on a small model (docs/benchmarks.md, "Small per-step costs").
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))


def optimizer_step(
    loss: Tensor,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    grad_clip: float = 0.0,
    ema: EMA | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Clear the gradients, backpropagate ``loss``, clip, step the optimizer, update the EMA.

    No host sync: the loss stays on its device. With a gradient scaler (fp16), the loss is
    scaled before backpropagation and the gradients unscaled before clipping; the scaler
    skips a step whose gradients overflowed and adapts its scale.

    Args:
        loss: the scalar loss of this step.
        params: the trained parameters, those of ``optimizer``.
        optimizer: the optimizer.
        grad_clip: clip the gradients' total norm to this (0 disables).
        ema: the weight average to update after the step, if any.
        scaler: the gradient scaler of fp16 training, if any.
    """
    for p in params:  # optimizer.zero_grad(set_to_none=True) without its hooks
        p.grad = None
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        if grad_clip > 0:  # clip the true gradients, not the scaled ones
            scaler.unscale_(optimizer)
    if grad_clip > 0:
        clip_grad_norm(params, grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    if ema is not None:
        ema.update()
