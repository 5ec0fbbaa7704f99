"""Reflow and distillation: seeded pairs, training on fixed pairs, sources other than N(0, I)."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

import flowmatch
from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig
from flowmatch.training import TrainConfig, generate_pairs, reflow, train
from flowmatch.training.batches import (
    OT_CHUNK_STEPS,
    ChunkedBatches,
    PairTableBatches,
    chunk_steps,
)
from flowmatch.training.methods import METHODS
from flowmatch.training.pairs import load_pairs, save_pairs
from tests.training.resume_check import assert_resume_is_exact

TINY = TrainConfig(
    data="8gaussians",
    steps=40,
    batch_size=64,
    model=ModelConfig(width=16, depth=2),
    checkpoint_every=20,
    log_every=10,
    warmup_steps=5,
    threads=1,
)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    run = tmp_path_factory.mktemp("reflow") / "teacher"
    train(dataclasses.replace(TINY, coupling="ot", preset="few-step"), run)
    return run


def test_reflow_pairs_are_deterministic_given_a_seed(teacher):
    flow = flowmatch.load(teacher)
    a = generate_pairs(flow, 300, seed=3, solver="rk4", steps=8)
    b = generate_pairs(flow, 300, seed=3, solver="rk4", steps=8)
    c = generate_pairs(flow, 300, seed=4, solver="rk4", steps=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # x1 is the flow's own sample of the same seed: the pairs are its ODE coupling
    x1 = flow.sample(300, seed=3, solver="rk4", steps=8)
    assert torch.allclose(a[1], x1, atol=1e-6)
    assert torch.equal(a[0], torch.randn(300, 2, generator=torch.Generator().manual_seed(3)))


def test_reflow_trains_on_the_pairs_and_reuses_them(teacher, tmp_path):
    r = reflow(teacher, tmp_path / "r1", n_pairs=200, solver="rk4", steps=4, train_steps=20)
    assert r.train.complete and not r.reused_pairs and r.pairs_file.parent == teacher / "pairs"
    info = flowmatch.load_run(tmp_path / "r1")[1]
    assert info.config.pairs == str(r.pairs_file.resolve())
    assert info.config.init_from == str(teacher.resolve())
    assert flowmatch.load_run(teacher)[1].config.preset == "few-step"
    assert info.config.preset == ""  # the student's values are not the preset's
    again = reflow(teacher, tmp_path / "r2", n_pairs=200, solver="rk4", steps=4, train_steps=20)
    assert again.reused_pairs
    # a reflow of a reflow
    r3 = reflow(tmp_path / "r1", tmp_path / "r3", n_pairs=100, solver="rk4", steps=4)
    assert r3.train.complete


def test_training_on_pairs_resumes_bit_for_bit(teacher, tmp_path):
    flow = flowmatch.load(teacher)
    x0, x1, _ = generate_pairs(flow, 256, seed=0, solver="euler", steps=4)
    save_pairs(tmp_path / "p.npz", x0, x1, {"seed": 0})
    cfg = dataclasses.replace(TINY, pairs=str(tmp_path / "p.npz"), init_from=str(teacher))
    assert_resume_is_exact(cfg, tmp_path, stop_after=15)


def test_distillation_loss_is_the_one_step_regression(teacher, tmp_path):
    flow = flowmatch.load(teacher)
    x0, x1, _ = generate_pairs(flow, 64, seed=1, solver="euler", steps=2)
    save_pairs(tmp_path / "p.npz", x0, x1)
    cfg = dataclasses.replace(TINY, method="distill", pairs=str(tmp_path / "p.npz"))
    method = METHODS["distill"](cfg)
    model = method.build((2,), flow.data_mean, flow.data_std)
    data = flowmatch.data.get_dataset(cfg.data)
    source = PairTableBatches(data, model, 8, torch.Generator().manual_seed(0), pairs=cfg.pairs)
    batch = source.next()
    g = torch.Generator().manual_seed(0)
    data.sample_batch(8, g)  # the source draws a data batch first, as earlier releases did
    idx = torch.randint(64, (8,), generator=g)
    z0, z1 = x0[idx], model.standardize(x1[idx])  # the Gaussian source is not rescaled
    assert torch.equal(batch.x0, z0) and torch.equal(batch.x1, z1) and batch.cond is None
    loss = method.loss(model, batch, torch.Generator())
    expected = (model.velocity(z0, 0.0) - (z1 - z0)).square().mean()
    assert torch.allclose(loss, expected)


def test_a_distilled_student_samples_in_one_euler_step(teacher, tmp_path):
    r = reflow(
        teacher, tmp_path / "d", method="distill", n_pairs=300, solver="rk4", steps=8,
        train_steps=30,
    )  # fmt: skip
    student = flowmatch.load(r.train.run_dir)
    x = student.sample(100, solver="euler", steps=1, seed=0)
    assert x.shape == (100, 2) and torch.isfinite(x).all()


def test_a_data_source_is_sampled_inverted_and_has_no_density(tmp_path):
    train(dataclasses.replace(TINY, source="moons", steps=20), tmp_path / "run")
    flow = flowmatch.load(tmp_path / "run")
    assert {"source.mean", "source.std"} <= set(flow.state_dict())
    z = flow.noise(4000, torch.Generator().manual_seed(0))  # standardized moons
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=0.1)
    assert torch.allclose(z.std(0), torch.ones(2), atol=0.1)
    x = flow.sample(50, seed=0, solver="rk4", steps=10)
    back = flow.invert(x, solver="rk4", steps=10)  # in the units of moons
    moons = flow.source.unstandardize(flow.noise(50, torch.Generator().manual_seed(0)))
    assert torch.allclose(back, moons, atol=1e-3)
    with pytest.raises(FlowmatchError, match="without a closed-form density"):
        flow.log_prob(x)


def test_no_standardize_keeps_data_and_source_units(tmp_path):
    train(dataclasses.replace(TINY, source="moons", standardize=False, steps=5), tmp_path / "r")
    flow = flowmatch.load(tmp_path / "r")
    for v in (flow.data_mean, flow.source.mean):
        assert torch.equal(v, torch.zeros(2))
    for v in (flow.data_std, flow.source.std):
        assert torch.equal(v, torch.ones(2))


def test_the_default_source_draws_the_same_noise_as_before(tmp_path):
    flow = flowmatch.FlowModel(flowmatch.models.MLPVelocity(2, 8, 1), torch.zeros(2), torch.ones(2))
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(flow.noise(5, g1), torch.randn(5, 2, generator=g2))


def test_bad_reflow_options_are_rejected(teacher, tmp_path):
    cases = [
        (lambda: train(dataclasses.replace(TINY, coupling="nope"), tmp_path / "a"), "coupling"),
        (lambda: train(dataclasses.replace(TINY, source="nope.npy"), tmp_path / "b"), "source"),
        (lambda: train(dataclasses.replace(TINY, method="distill"), tmp_path / "c"), "--pairs"),
        (
            lambda: train(dataclasses.replace(TINY, pairs="x.npz", coupling="ot"), tmp_path / "d"),
            "--pairs fixes",
        ),
        (lambda: train(dataclasses.replace(TINY, pairs="missing.npz"), tmp_path / "e"), "exist"),
        (lambda: reflow(tmp_path / "nothing", tmp_path / "f"), "does not exist"),
        (lambda: reflow(teacher, tmp_path / "g", method="cnf"), "'fm' or 'distill'"),
        (lambda: train(dataclasses.replace(TINY, distill_steps=0), tmp_path / "h"), "distill"),
    ]
    for fn, fragment in cases:
        with pytest.raises(FlowmatchError, match=fragment) as info:
            fn()
        assert "\n" not in str(info.value)
    np.save(tmp_path / "three.npy", np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(FlowmatchError, match="3 features"):
        train(dataclasses.replace(TINY, source=str(tmp_path / "three.npy")), tmp_path / "i")
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(FlowmatchError, match="pairs file"):
        load_pairs(tmp_path / "bad.npz")
    np.savez(tmp_path / "half.npz", x1=np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(FlowmatchError, match=r"no array x0 .*x0 and x1, as flowmatch reflow"):
        load_pairs(tmp_path / "half.npz")


@pytest.mark.parametrize("stop_after", [13, 16, 21])  # inside the first chunk, at, after
def test_blockwise_ot_training_resumes_bit_for_bit(tmp_path, stop_after):
    cfg = dataclasses.replace(TINY, coupling="ot", ot_batch=16, steps=40)
    assert chunk_steps(cfg, conditional=False) == OT_CHUNK_STEPS < cfg.steps
    assert_resume_is_exact(cfg, tmp_path, stop_after=stop_after)


def test_chunked_pairs_are_optimal_within_each_block_of_each_batch():
    cfg = dataclasses.replace(TINY, coupling="ot", ot_batch=6, batch_size=24)
    flow = METHODS["fm"](cfg).build((2,), torch.zeros(2), torch.ones(2))
    data = flowmatch.data.get_dataset("8gaussians")
    g = torch.Generator().manual_seed(0)
    source = ChunkedBatches(data, flow, 24, g, coupling="ot", ot_batch=6, steps=3)
    batches = [source.next() for _ in range(3)]  # one chunk of 3 steps of 24 rows
    x0, x1 = torch.cat([b.x0 for b in batches]), torch.cat([b.x1 for b in batches])
    g = torch.Generator().manual_seed(0)  # the same draws, unpaired
    assert torch.equal(flow.standardize(data.sample_batch(72, g)[0]), x1)
    raw = flow.noise(72, g)
    perms = torch.tensor(list(itertools.permutations(range(6))))  # (720, 6)
    for s in range(0, 72, 6):  # pairing permutes x0 inside each block, to its brute-force optimum
        a, b, r = x0[s : s + 6], x1[s : s + 6], raw[s : s + 6]
        assert torch.equal(a[a[:, 0].argsort()], r[r[:, 0].argsort()])
        best = (r[perms] - b).square().sum(dim=(1, 2)).min()
        assert (a - b).square().sum() <= best + 1e-5


def test_only_unconditional_fm_on_blocks_of_the_batch_draws_in_chunks():
    ot = dataclasses.replace(TINY, coupling="ot", ot_batch=16)
    assert chunk_steps(ot, conditional=False) == OT_CHUNK_STEPS
    assert chunk_steps(ot, conditional=True) == 1
    for change in (
        {"coupling": "independent"},
        {"coupling": "sinkhorn"},
        {"ot_batch": 0},  # the whole batch: one problem a step already
        {"ot_batch": 24},  # 64 rows are not whole blocks of 24
        {"method": "distill"},
    ):
        assert chunk_steps(dataclasses.replace(ot, **change), conditional=False) == 1, change
