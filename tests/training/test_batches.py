"""Batch sources and methods: the random stream of a step, state round trips, the protocol."""

import dataclasses

import pytest
import torch

from flowmatch.data import get_dataset
from flowmatch.models import ModelConfig
from flowmatch.training import METHODS, Batch, TrainConfig
from flowmatch.training.batches import (
    ChunkedBatches,
    CoupledBatches,
    DataBatches,
    PairTableBatches,
    batch_source,
)
from flowmatch.training.pairs import save_pairs

CFG = TrainConfig(
    data="8gaussians", batch_size=32, time_sampling="uniform", model=ModelConfig(width=16, depth=1)
)
STATS = (torch.tensor([0.5, -1.0]), torch.tensor([2.0, 3.0]))  # not 0, 1: data get rescaled


def model_for(cfg: TrainConfig):
    torch.manual_seed(0)
    return METHODS[cfg.method](cfg).build((2,), *STATS)


def test_a_step_draws_data_then_noise_then_times():
    """The random stream of one flow-matching step, written out by hand."""
    cfg, data = CFG, get_dataset("8gaussians")
    model = model_for(cfg)
    source = batch_source(cfg, data, model, torch.Generator().manual_seed(5), coupled=True,
                          conditional=False)  # fmt: skip
    batch = source.next()
    loss = METHODS["fm"](cfg).loss(model, batch, source.generator)
    g = torch.Generator().manual_seed(5)
    x1 = model.standardize(data.sample_batch(32, g)[0])
    x0 = torch.randn(32, 2, generator=g)
    t = torch.rand(32, generator=g)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    expected = (model.velocity(xt, t) - (x1 - x0)).square().mean()
    assert torch.equal(batch.x0, x0) and torch.equal(batch.x1, x1) and batch.cond is None
    assert torch.equal(loss, expected)
    assert torch.equal(source.generator.get_state(), g.get_state())


def sources(tmp_path):
    """One source of each kind, made by a function of the generator."""
    data = get_dataset("8gaussians")
    fm = model_for(CFG)
    cnf = model_for(dataclasses.replace(CFG, method="cnf"))
    save_pairs(tmp_path / "p.npz", torch.randn(50, 2), torch.randn(50, 2))
    return {
        "data": lambda g: DataBatches(data, cnf, 32, g),
        "coupled": lambda g: CoupledBatches(data, fm, 32, g, coupling="sinkhorn", ot_batch=8),
        "chunked": lambda g: ChunkedBatches(data, fm, 32, g, coupling="ot", ot_batch=8, steps=4),
        "pairs": lambda g: PairTableBatches(data, fm, 32, g, pairs=str(tmp_path / "p.npz")),
    }


@pytest.mark.parametrize("kind", ["data", "coupled", "chunked", "pairs"])
@pytest.mark.parametrize("drawn", [0, 3, 4, 6])  # chunked: start, inside, at and past a boundary
def test_a_source_restored_from_its_state_draws_the_same_batches(tmp_path, kind, drawn):
    make = sources(tmp_path)[kind]
    a = make(torch.Generator().manual_seed(0))
    for _ in range(drawn):
        a.next()
    state = a.state_dict()
    b = make(torch.Generator().manual_seed(1))  # another generator, another state
    b.load_state_dict(state)
    for _ in range(5):
        x, y = a.next(), b.next()
        for name in ("x0", "x1", "cond"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None and v is None) or torch.equal(u, v), name
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


def test_sources_are_independent_instances(tmp_path):
    """What a multi-process run needs: one source per process, each with its own generator."""
    make = sources(tmp_path)["chunked"]
    rank0, rank1 = make(torch.Generator().manual_seed(0)), make(torch.Generator().manual_seed(1))
    alone = make(torch.Generator().manual_seed(0))
    for _ in range(6):
        x, other, y = rank0.next(), rank1.next(), alone.next()
        assert torch.equal(x.x0, y.x0) and torch.equal(x.x1, y.x1)  # rank 1 changed nothing
        assert not torch.equal(x.x1, other.x1)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_on_the_batches_of_its_source(tmp_path, name):
    save_pairs(tmp_path / "p.npz", torch.randn(50, 2), torch.randn(50, 2))
    pairs = str(tmp_path / "p.npz") if name == "distill" else ""
    cfg = dataclasses.replace(CFG, method=name, pairs=pairs, layers=2, cnf_steps=2)
    method = METHODS[name](cfg)
    assert isinstance(method.supports_condition, bool) and isinstance(method.coupled, bool)
    model = method.build((2,), *STATS)
    source = batch_source(cfg, get_dataset(cfg.data), model, torch.Generator(),
                          coupled=method.coupled, conditional=False)  # fmt: skip
    batch = source.next()
    assert isinstance(batch, Batch) and (batch.x0 is not None) == method.coupled
    loss = method.loss(model, batch, source.generator)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_optimizer_step_is_torchs_canonical_step_plus_the_ema():
    from flowmatch.training import EMA, optimizer_step

    torch.manual_seed(0)
    ours, ref = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ref.load_state_dict(ours.state_dict())
    ema = EMA(ours, 0.5)
    opt_a = torch.optim.AdamW(ours.parameters(), lr=0.1)
    opt_b = torch.optim.AdamW(ref.parameters(), lr=0.1)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        optimizer_step(ours(x).square().sum(), list(ours.parameters()), opt_a, 0.1, ema)
        opt_b.zero_grad(set_to_none=True)
        ref(x).square().sum().backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.1, foreach=True)
        opt_b.step()
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert ema.updates == 3 and not torch.equal(ema.model.weight, ours.weight)
