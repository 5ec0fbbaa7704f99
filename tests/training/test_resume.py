"""Checkpoints: resume equals uninterrupted training; save/load round trips."""

import dataclasses
import json

import pytest
import torch

import flowmatch
from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig
from flowmatch.training import TrainConfig, load_checkpoint, resume, train
from tests.training.resume_check import assert_resume_is_exact

TINY = TrainConfig(
    data="moons",
    steps=60,
    batch_size=64,
    model=ModelConfig(width=32, depth=2),
    checkpoint_every=25,
    log_every=10,
    warmup_steps=5,
    threads=1,
)


def tiny(**kw):
    return dataclasses.replace(TINY, **kw)


def test_resume_equals_uninterrupted(tmp_path):
    assert_resume_is_exact(tiny(), tmp_path, stop_after=35)
    # the resumed log has each logged step once (plus the stop point), in order
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "part" / "metrics.jsonl").open()]
    assert steps == sorted(set(steps)) and set(range(10, 61, 10)) <= set(steps)


def test_resume_after_the_end_is_a_no_op(tmp_path):
    train(tiny(steps=10, log_every=5), tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.safetensors").read_bytes()
    result = resume(tmp_path / "run")
    assert result.complete
    assert (tmp_path / "run" / "checkpoint.safetensors").read_bytes() == before


def test_load_round_trip_uses_ema_weights(tmp_path):
    train(tiny(steps=30), tmp_path / "run")
    tensors, _ = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    flow = flowmatch.load(tmp_path / "run")
    for name, value in flow.state_dict().items():
        assert torch.equal(value, tensors[f"ema.{name}"]), name
    raw = flowmatch.load(tmp_path / "run", ema=False)
    assert not torch.equal(
        raw.velocity.net[0].weight, flow.velocity.net[0].weight
    )  # EMA and raw weights differ after training
    x1 = flow.sample(50, solver="rk4", steps=5, seed=3)
    x2 = flowmatch.load(tmp_path / "run").sample(50, solver="rk4", steps=5, seed=3)
    torch.testing.assert_close(x1, x2)


def test_samples_come_back_in_data_units(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 2, generator=g) * torch.tensor([0.01, 300.0]) + torch.tensor([5.0, -7e3])
    path = tmp_path / "data.npy"
    import numpy as np

    np.save(path, x.numpy())
    train(tiny(data=str(path), steps=300, lr=3e-3), tmp_path / "run")
    flow = flowmatch.load(tmp_path / "run")
    s = flow.sample(2000, solver="rk4", steps=10, seed=0)
    torch.testing.assert_close(s.mean(0), x.mean(0), rtol=0, atol=float(x.std(0).max()) * 0.2)
    ratio = s.std(0) / x.std(0)
    assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio


def test_new_run_refuses_a_used_folder(tmp_path):
    train(tiny(steps=5, log_every=5), tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.safetensors").read_bytes()
    with pytest.raises(FlowmatchError, match="already holds a run"):
        train(tiny(steps=5), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.safetensors").read_bytes() == before


def test_divergence_is_reported_and_keeps_the_last_checkpoint(tmp_path):
    with pytest.raises(FlowmatchError, match="diverged"):
        train(tiny(lr=1e30, grad_clip=0.0, steps=40, checkpoint_every=10), tmp_path / "run")


def test_config_round_trip_and_runs_saved_before_a_field_existed():
    cfg = dataclasses.replace(TINY, coupling="ot", ot_batch=32)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = cfg.to_dict()
    del old["ot_batch"]  # an OT run saved before blocks existed solved whole batches
    assert TrainConfig.from_dict(old).ot_batch == 0
    with pytest.raises(FlowmatchError, match="unknown fields"):
        TrainConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_a_config_without_a_changed_field_keeps_the_old_default():
    """A run saved without a field whose default changed resumes with the value it trained
    with, not today's default: a time embedding up to frequency 1000, uniform times."""
    from flowmatch.training.config import FIELDS_ADDED_LATER, MODEL_FIELDS_ADDED_LATER

    old = TINY.to_dict()
    for name in FIELDS_ADDED_LATER:
        del old[name]
    for name in MODEL_FIELDS_ADDED_LATER:
        del old["model"][name]
    cfg = TrainConfig.from_dict(old)
    assert cfg.model.time_max_freq == 1000.0 != ModelConfig().time_max_freq
    assert cfg.time_sampling == "uniform" != TrainConfig().time_sampling
    for name, value in FIELDS_ADDED_LATER.items():
        assert getattr(cfg, name) == value
    for name, value in MODEL_FIELDS_ADDED_LATER.items():
        assert getattr(cfg.model, name) == value
    saved = TINY.to_dict()  # a run that saved the old defaults keeps them
    saved["model"]["time_max_freq"], saved["time_sampling"] = 1000.0, "uniform"
    cfg = TrainConfig.from_dict(saved)
    assert (cfg.model.time_max_freq, cfg.time_sampling) == (1000.0, "uniform")


def test_a_run_folder_saved_without_the_field_samples_as_it_did(tmp_path):
    from flowmatch.training.checkpoint import CONFIG_FILE

    run = tmp_path / "old"
    train(tiny(steps=10, model=ModelConfig(width=32, depth=2, time_max_freq=1000.0)), run)
    before = flowmatch.load(run).sample(50, solver="euler", steps=4, seed=0)
    record = json.loads((run / CONFIG_FILE).read_text())
    del record["config"]["model"]["time_max_freq"]  # as written before the field existed
    (run / CONFIG_FILE).write_text(json.dumps(record))
    flow = flowmatch.load(run)
    assert flow.velocity.time_embed.freqs.max().item() == pytest.approx(1000.0)
    assert torch.equal(flow.sample(50, solver="euler", steps=4, seed=0), before)


@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e3])
def test_clip_grad_norm_matches_torch_and_caps_the_norm(max_norm):
    from flowmatch.training.optim import clip_grad_norm

    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3, generator=g)) for _ in range(3)]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, ref, strict=True):
        a.grad = torch.randn(a.shape, generator=g)
        b.grad = a.grad.clone()
    before = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours]))
    clip_grad_norm(ours, max_norm)
    torch.nn.utils.clip_grad_norm_(ref, max_norm, foreach=True)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
    after = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours]))
    assert after <= min(before, max_norm) * (1 + 1e-5)
