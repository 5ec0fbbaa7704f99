"""Maximum-likelihood training of continuous normalizing flows (--method cnf)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import flowmatch
from flowmatch.errors import FlowmatchError
from flowmatch.likelihood import log_prob, make_divergence
from flowmatch.models import ModelConfig
from flowmatch.training import METHODS, Batch, TrainConfig, train
from flowmatch.training.cnf import jittered_grid
from tests.training.resume_check import assert_resume_is_exact

TINY = TrainConfig(
    data="moons",
    method="cnf",
    steps=12,
    batch_size=32,
    model=ModelConfig(width=16, depth=1),
    cnf_steps=2,
    checkpoint_every=5,
    log_every=4,
    warmup_steps=2,
    threads=1,
)


def tiny(**kw):
    return dataclasses.replace(TINY, **kw)


def test_loss_is_the_nll_per_dimension_in_data_units_plus_the_kinetic_energy():
    cfg = tiny(cnf_solver="rk4", cnf_steps=4, cnf_jitter=False)
    method = METHODS["cnf"](cfg)
    mean, std = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    torch.manual_seed(0)
    flow = method.build((2,), mean, std)
    x = mean + std * torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    batch = Batch(None, flow.standardize(x))
    loss = method.loss(flow, batch, torch.Generator())
    expected = -flow.log_prob(x, solver="rk4", steps=4).mean() / 2
    torch.testing.assert_close(loss.detach(), expected)
    lam = 0.3
    cfg_ke = dataclasses.replace(cfg, cnf_kinetic=lam)
    with_ke = METHODS["cnf"](cfg_ke).loss(flow, batch, torch.Generator())
    z = flow.standardize(x)
    ke = log_prob(flow.flat_field(), z, make_divergence("exact", z), kinetic=True,
                  solver="rk4", steps=4).kinetic  # fmt: skip
    torch.testing.assert_close(with_ke.detach() - loss.detach(), lam * ke.mean() / 2)
    loss.backward()  # gradients reach the network through the solver and the divergence
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())


def test_jittered_grids_are_ordered_and_cover_each_cell():
    grids = torch.stack([jittered_grid(5, torch.Generator().manual_seed(s)) for s in range(200)])
    assert bool((grids.diff(dim=1) < 0).all())
    assert bool((grids[:, 0] == 1).all() and (grids[:, -1] == 0).all())
    inner = grids[:, 1:-1].flip(1)  # node k in [(k - 1/2) / 5, (k + 1/2) / 5)
    k = torch.arange(1, 5, dtype=torch.float64)
    assert bool(((inner >= (k - 0.5) / 5) & (inner < (k + 0.5) / 5)).all())
    assert inner.std(dim=0).min() > 0.04  # really random


def test_resume_equals_uninterrupted_with_hutchinson_and_jitter(tmp_path):
    cfg = tiny(cnf_divergence="hutchinson", cnf_probes=2)
    assert_resume_is_exact(cfg, tmp_path, stop_after=7)


def test_maximum_likelihood_nears_the_entropy_of_a_gaussian(tmp_path):
    rng = np.random.default_rng(0)
    cov = np.array([[2.0, 1.2], [1.2, 1.0]])
    x = rng.multivariate_normal([1.0, -2.0], cov, size=4000).astype(np.float32)
    np.save(tmp_path / "gauss.npy", x)
    cfg = tiny(data=str(tmp_path / "gauss.npy"), steps=150, batch_size=128, lr=1e-2,
               model=ModelConfig(width=32, depth=1), log_every=50)  # fmt: skip
    train(cfg, tmp_path / "run")
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").open()]
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * cov))
    # the logged loss is the NLL per dimension in data units
    assert rows[-1]["loss"] * 2 == pytest.approx(entropy, abs=0.1), rows
    flow = flowmatch.load(tmp_path / "run")
    held = torch.from_numpy(rng.multivariate_normal([1.0, -2.0], cov, size=2000)).float()
    nll = -flow.log_prob(held, solver="rk4", steps=8).mean().item()
    assert nll == pytest.approx(entropy, abs=0.1)


def test_digits_train_with_hutchinson(tmp_path):
    cfg = tiny(data="digits", steps=3, batch_size=16, cnf_steps=1, log_every=1)
    result = train(cfg, tmp_path / "run")
    assert result.complete and math.isfinite(result.loss)
    # NLL per feature in data units: between a perfect model (0) and the Gaussian-ish start
    assert 0.0 < result.loss < 4.0
    flow = flowmatch.load(tmp_path / "run")
    x = torch.rand(3, 64) * 17
    r = flow.log_prob_with_stats(x, solver="rk4", steps=2, divergence="hutchinson", probes=2)
    assert r.stderr is not None and r.stderr.min() > 0 and r.log_prob.shape == (3,)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"cnf_solver": "rk45"}, "unknown --cnf-solver 'rk45'"),
        ({"cnf_divergence": "trace"}, "unknown --cnf-divergence"),
        ({"cnf_probe": "uniform"}, "unknown --cnf-probe"),
        ({"cnf_steps": 0}, "--cnf-steps must be an integer >= 1"),
        ({"cnf_probes": 0}, "--cnf-probes must be an integer >= 1"),
        ({"cnf_atol": 0.0}, "--cnf-atol must be a positive number"),
        ({"cnf_kinetic": -1.0}, "--cnf-kinetic must be >= 0"),
        ({"coupling": "ot"}, "--method cnf .* no use for --coupling"),
        ({"source": "moons"}, "no use for --source"),
        ({"model": ModelConfig(time_max_freq=0.5)}, "--time-max-freq must be >= 1"),
    ],
)
def test_bad_options_are_rejected_in_one_line(tmp_path, kw, message):
    with pytest.raises(FlowmatchError, match=message) as info:
        train(tiny(**kw), tmp_path / "run")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()
