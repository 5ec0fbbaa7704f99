"""Conditional training: dropout rate, within-class couplings, resume, samples per class."""

import dataclasses
import math

import pytest
import torch

import flowmatch
from flowmatch.couplings import ExactOT
from flowmatch.data import DATASETS, ArrayDataset
from flowmatch.errors import FlowmatchError
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import MLPVelocity, ModelConfig
from flowmatch.training import Batch, TrainConfig, train
from flowmatch.training.methods import FlowMatching
from tests.training.resume_check import assert_resume_is_exact

CENTERS = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])


def mixture() -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3000) % 3
    x = CENTERS[labels] + 0.3 * torch.randn(3000, 2, generator=g)
    return ArrayDataset(x, "mixture", cond=labels)


@pytest.fixture
def labelled(monkeypatch):
    monkeypatch.setitem(DATASETS, "mixture", mixture)
    threads = torch.get_num_threads()
    yield TrainConfig(
        data="mixture",
        steps=400,
        batch_size=256,
        lr=3e-3,
        warmup_steps=20,
        model=ModelConfig(width=64, depth=2),
        checkpoint_every=150,
        log_every=50,
        threads=1,
    )
    torch.set_num_threads(threads)


def test_the_loss_drops_conditions_at_the_asked_rate():
    torch.manual_seed(0)
    flow = FlowModel(MLPVelocity(2, 16, 1, num_classes=3), torch.zeros(2), torch.ones(2))
    seen = []
    embed = flow.velocity.condition.forward

    def spy(cond, batch, drop=None):
        seen.append(drop)
        return embed(cond, batch, drop)

    flow.velocity.condition.forward = spy
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(4000, 2), torch.randn(4000, 2), torch.arange(4000) % 3)
    for p in (0.0, 0.25):
        seen.clear()
        method = FlowMatching(TrainConfig(cond_drop=p))
        for _ in range(10):
            method.loss(flow, batch, g)
        rate = float(torch.cat(seen).float().mean())
        assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / 40_000) + 1e-12, (p, rate)


def test_minibatch_ot_pairs_only_within_a_class():
    g = torch.Generator().manual_seed(0)
    x0 = torch.arange(12, dtype=torch.float32)[:, None].repeat(1, 2)  # row i holds i
    x1 = torch.randn(12, 2, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 2, 2, 0, 1, 1, 0])
    paired, same = ExactOT().pair(x0, x1, labels)
    assert same is x1
    source = paired[:, 0].long()  # which x0 row each x1 row got
    assert sorted(source.tolist()) == list(range(12))  # a permutation
    assert torch.equal(labels[source], labels)  # that never crosses a class
    with pytest.raises(FlowmatchError, match="continuous conditions"):
        ExactOT().pair(x0, x1, torch.randn(12, 3))


def test_conditional_resume_equals_uninterrupted(labelled, tmp_path):
    cfg = dataclasses.replace(labelled, steps=60, coupling="ot")
    a = assert_resume_is_exact(cfg, tmp_path, stop_after=35)
    assert "model.velocity.condition.table.weight" in a


def test_class_conditional_samples_land_in_their_component(labelled, tmp_path):
    train(labelled, tmp_path / "run")
    flow, info = flowmatch.load_run(tmp_path / "run")
    assert info.record["data"]["condition"]["kind"] == "class"
    assert info.config.model.num_classes == 3
    for k in range(3):
        x = flow.sample(300, cond=k, solver="midpoint", steps=10, seed=k)
        nearest = torch.cdist(x, CENTERS).argmin(dim=1)
        assert float((nearest == k).float().mean()) >= 0.95, k
    # the null condition is the unconditional model: every component gets its share
    x = flow.sample(600, solver="midpoint", steps=10, seed=5)
    shares = torch.bincount(torch.cdist(x, CENTERS).argmin(dim=1), minlength=3) / 600
    assert bool((shares > 0.2).all()), shares


def test_bad_conditional_training_options(labelled, tmp_path):
    bad = [
        (dataclasses.replace(labelled, model=ModelConfig(num_classes=5)), "does not match"),
        (dataclasses.replace(labelled, method="planar"), "--no-conditional"),
        (dataclasses.replace(labelled, cond_drop=1.0), "--cond-drop"),
        (
            dataclasses.replace(labelled, conditional=False, model=ModelConfig(num_classes=3)),
            "--no-conditional was given",
        ),
        (
            dataclasses.replace(labelled, data="moons", model=ModelConfig(cond_dim=2)),
            "has no conditions",
        ),
    ]
    for i, (cfg, fragment) in enumerate(bad):
        with pytest.raises(FlowmatchError, match=fragment):
            train(cfg, tmp_path / f"r{i}")


def test_no_conditional_ignores_the_labels(labelled, tmp_path):
    train(dataclasses.replace(labelled, steps=5, conditional=False), tmp_path / "run")
    flow = flowmatch.load(tmp_path / "run")
    assert flow.velocity.condition is None


@pytest.mark.parametrize("coupling", ["ot", "sinkhorn", "class-ot"])
def test_training_batches_pair_noise_and_data_only_within_a_class(coupling):
    from flowmatch.training.batches import CoupledBatches

    torch.manual_seed(0)
    flow = FlowModel(MLPVelocity(2, 16, 1, num_classes=3), torch.zeros(2), torch.ones(2))
    labels = torch.tensor([0, 1, 2, 2, 0, 1, 1, 0, 2, 2, 1, 0] * 8)  # (96,), two OT blocks
    x1 = CENTERS[labels] + 0.1 * torch.randn(96, 2)
    g = torch.Generator().manual_seed(3)
    source = CoupledBatches(mixture(), flow, 96, g, True, coupling=coupling, ot_batch=64)
    x0 = flow.noise(96, torch.Generator().manual_seed(3))  # the draw the source will make
    paired, same = source.couple(x1, labels)
    assert same is x1
    for c in range(3):  # class c's data get partners only among class c's noise rows
        at = labels == c
        got, own = sorted(map(tuple, paired[at].tolist())), sorted(map(tuple, x0[at].tolist()))
        assert set(got) <= set(own), c
        if coupling != "sinkhorn":  # exact OT: a permutation within the class
            assert got == own, c
    assert not torch.equal(paired, x0)  # and the coupling did reorder them
