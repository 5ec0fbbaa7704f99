"""Maximum-likelihood training of planar flows through the common loop and run folders."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import flowmatch
from flowmatch.errors import FlowmatchError
from flowmatch.flows import DiscreteFlowModel
from flowmatch.flows.variational import box_grid
from flowmatch.training import TrainConfig, load_checkpoint, resume, train
from tests.training.resume_check import assert_resume_is_exact

TINY = TrainConfig(
    data="moons",
    method="planar",
    layers=4,
    steps=40,
    batch_size=64,
    checkpoint_every=15,
    log_every=10,
    warmup_steps=5,
    threads=1,
)


def tiny(**kw):
    return dataclasses.replace(TINY, **kw)


def test_resume_equals_uninterrupted(tmp_path):
    assert_resume_is_exact(tiny(), tmp_path, stop_after=17)


def test_maximum_likelihood_reaches_the_entropy_of_a_gaussian(tmp_path):
    """On correlated Gaussian data the fitted density's held-out NLL nears the entropy."""
    rng = np.random.default_rng(0)
    cov = np.array([[2.0, 1.2], [1.2, 1.0]])
    x = rng.multivariate_normal([1.0, -2.0], cov, size=4000)
    path = tmp_path / "gauss.npy"
    np.save(path, x)
    cfg = tiny(data=str(path), layers=2, steps=300, batch_size=256, lr=1e-2, ema_decay=0.9)
    train(cfg, tmp_path / "run")
    flow = flowmatch.load(tmp_path / "run")
    assert isinstance(flow, DiscreteFlowModel)
    held = torch.from_numpy(rng.multivariate_normal([1.0, -2.0], cov, size=4000)).float()
    with torch.no_grad():
        nll = -float(flow.log_prob(held).mean())
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * cov))
    assert entropy - 0.05 < nll < entropy + 0.05


def test_a_loaded_run_is_a_normalized_density_in_data_units(tmp_path):
    train(tiny(data="8gaussians"), tmp_path / "run")
    flow = flowmatch.load(tmp_path / "run")
    _, points, cell = box_grid((-9.0, 9.0, -9.0, 9.0), 300)
    with torch.no_grad():
        mass = flow.log_prob(points.float()).double().exp().sum() * cell
    assert abs(float(mass) - 1.0) < 1e-3
    x = flow.sample(50, seed=0)
    torch.testing.assert_close(
        flow.invert(x), torch.randn(50, 2, generator=torch.Generator().manual_seed(0)),
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"layers": 0}, "--layers must be an integer >= 1"),
        ({"planar_activation": "relu"}, "unknown --planar-activation 'relu'"),
    ],
)
def test_bad_planar_settings_are_rejected(tmp_path, kw, fragment):
    with pytest.raises(FlowmatchError) as err:
        train(tiny(**kw), tmp_path / "run")
    assert fragment in str(err.value)
    assert not (tmp_path / "run").exists()


def test_max_seconds_stops_at_a_step_and_leaves_a_resumable_run(tmp_path):
    result = train(tiny(), tmp_path / "run", max_seconds=0.0)
    assert result.step == 1 and not result.complete
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert meta["step"] == 1
    assert resume(tmp_path / "run").complete
