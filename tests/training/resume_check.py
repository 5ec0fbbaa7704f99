"""The resume property every training method must have, as one check for its tests."""

from __future__ import annotations

from pathlib import Path

import torch

from flowmatch.training import TrainConfig, load_checkpoint, resume, train


def assert_resume_is_exact(cfg: TrainConfig, tmp_path: Path, stop_after: int) -> dict:
    """Train ``cfg`` straight through, and again stopped after ``stop_after`` steps and resumed;
    assert both runs end complete, at the same step, with bit-identical checkpoints.

    Returns the uninterrupted run's checkpoint tensors, for further checks.
    """
    full = train(cfg, tmp_path / "full")
    part = train(cfg, tmp_path / "part", stop_after=stop_after)
    assert part.step == stop_after and not part.complete
    assert resume(tmp_path / "part").complete and full.complete
    a, meta_a = load_checkpoint(tmp_path / "full" / "checkpoint.safetensors")
    b, meta_b = load_checkpoint(tmp_path / "part" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and meta_a["step"] == meta_b["step"] == cfg.steps
    for key in a:
        assert torch.equal(a[key], b[key]), key
    return a
