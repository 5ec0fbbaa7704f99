"""Dataset objects: toy sets, array splits, sampling and the name-or-path lookup."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowmatch.data.dataset import DATASETS, ArrayDataset, ToyDataset, get_dataset
from flowmatch.data.toy import TOY_DATASETS
from flowmatch.errors import FlowmatchError
from flowmatch.training import TrainConfig


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r.tolist()) for r in x}


@pytest.fixture
def x() -> torch.Tensor:
    return torch.arange(60, dtype=torch.float32).reshape(20, 3)  # 20 distinct rows


def test_registry_holds_the_toy_sets():
    assert set(TOY_DATASETS) <= set(DATASETS)  # plus image sets and demonstrations
    for name in TOY_DATASETS:
        ds = get_dataset(name)
        assert isinstance(ds, ToyDataset) and ds.name == name and ds.dim == 2
        assert ds.shape == (2,)
        assert ds.sample(5, gen()).shape == (5, 2)


def test_toy_held_out_is_fresh():
    ds = ToyDataset("moons")
    assert ds.held_out(None, gen()).shape == (2000, 2)
    assert ds.held_out(17, gen()).shape == (17, 2)
    assert not torch.equal(ds.sample(17, gen(1)), ds.sample(17, gen(2)))
    with pytest.raises(FlowmatchError, match="unknown toy dataset"):
        ToyDataset("digits")


def test_iid_sample_is_a_plain_draw_for_independent_sets():
    ds = ToyDataset("8gaussians")
    assert torch.equal(ds.iid_sample(300, gen(3)), ds.sample(300, gen(3)))


def test_iid_sample_of_a_stratified_set_varies_like_independent_points():
    # a moons draw has fixed angles and an exact split between the moons, so the mean of its
    # x coordinates only moves with the noise (sd 0.2 / sqrt(n) = 0.01); for independent
    # points it moves with the whole spread of x (sd about sqrt(2.3 / n) = 0.076)
    ds = ToyDataset("moons")
    n = 400
    stratified = np.std([float(ds.sample(n, gen(s))[:, 0].mean()) for s in range(30)])
    independent = np.std([float(ds.iid_sample(n, gen(s))[:, 0].mean()) for s in range(30)])
    assert stratified < 0.02 and independent > 4.0 * stratified
    x = ds.iid_sample(20000, gen(0))  # ... from the same distribution
    ref = ds.sample(20000, gen(1))
    assert torch.allclose(x.mean(0), ref.mean(0), atol=0.05)
    assert torch.allclose(x.std(0), ref.std(0), atol=0.05)


def test_split_partitions_rows(x):
    ds = ArrayDataset(x, "arr", holdout_fraction=0.25)
    assert ds.test_data.shape == (5, 3) and ds.train_data.shape == (15, 3)
    assert rows(ds.train_data) | rows(ds.test_data) == rows(x)
    assert not rows(ds.train_data) & rows(ds.test_data)
    assert ds.dim == 3 and ds.shape == (3,) and ds.name == "arr"


def test_split_depends_only_on_split_seed(x):
    a, b = ArrayDataset(x, "a"), ArrayDataset(x, "b")
    torch.manual_seed(123)  # the global state must not matter
    c = ArrayDataset(x, "c")
    assert torch.equal(a.test_data, b.test_data) and torch.equal(a.test_data, c.test_data)
    others = [ArrayDataset(x, "d", split_seed=s).test_data for s in range(1, 6)]
    assert any(not torch.equal(a.test_data, o) for o in others)


@pytest.mark.parametrize(
    ("n", "frac", "n_test"), [(2, 0.1, 1), (2, 0.9, 1), (10, 0.01, 1), (10, 0.5, 5)]
)
def test_both_parts_nonempty(n, frac, n_test):
    ds = ArrayDataset(torch.randn(n, 2), "arr", holdout_fraction=frac)
    assert len(ds.test_data) == n_test and len(ds.train_data) == n - n_test


def test_sample_draws_training_rows_only(x):
    ds = ArrayDataset(x, "arr", holdout_fraction=0.5)
    state = torch.get_rng_state()
    s = ds.sample(500, gen(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert s.shape == (500, 3)
    assert rows(s) == rows(ds.train_data)  # 500 draws from 10 rows hit every one of them
    assert torch.equal(s, ds.sample(500, gen(3)))


def test_held_out_rows(x):
    ds = ArrayDataset(x, "arr", holdout_fraction=0.3)
    assert torch.equal(ds.held_out(None, gen()), ds.test_data)
    assert torch.equal(ds.held_out(100, gen()), ds.test_data)
    part = ds.held_out(4, gen())
    assert part.shape == (4, 3)
    assert len(rows(part)) == 4 and rows(part) <= rows(ds.test_data)


def test_images_keep_their_shape():
    ds = ArrayDataset(torch.rand(10, 1, 4, 4), "img")
    assert ds.dim == 16 and ds.shape == (1, 4, 4)
    assert ds.sample(3, gen()).shape == (3, 1, 4, 4)


def test_array_dataset_rejects_bad_input(x):
    with pytest.raises(FlowmatchError, match="at least 2"):
        ArrayDataset(torch.ones(1, 2), "one")
    with pytest.raises(FlowmatchError, match="empty"):
        ArrayDataset(torch.ones(0, 2), "none")
    with pytest.raises(FlowmatchError, match="NaN"):
        ArrayDataset(torch.tensor([[1.0], [float("nan")]]), "nan")
    for frac in (0.0, 1.0, -0.5):
        with pytest.raises(FlowmatchError, match="holdout_fraction"):
            ArrayDataset(x, "arr", holdout_fraction=frac)
    ds = ArrayDataset(x, "arr")
    with pytest.raises(FlowmatchError, match="must be an integer >= 1"):
        ds.sample(0, gen())
    with pytest.raises(FlowmatchError, match="must be an integer >= 1"):
        ds.held_out(-1, gen())
    with pytest.raises(FlowmatchError, match=r"torch\.Generator"):
        ds.sample(3, None)


def test_get_dataset_from_file(tmp_path):
    data = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    path = tmp_path / "points.npy"
    np.save(path, data)
    ds = get_dataset(str(path))
    assert isinstance(ds, ArrayDataset) and ds.name == str(path) and ds.dim == 4
    assert len(ds.train_data) + len(ds.test_data) == 30
    assert rows(torch.cat([ds.train_data, ds.test_data])) == rows(torch.from_numpy(data))


def test_get_dataset_unknown():
    with pytest.raises(FlowmatchError) as info:
        get_dataset("foo")
    msg = str(info.value)
    assert "unknown dataset 'foo'" in msg and "no such file" in msg
    assert all(name in msg for name in DATASETS)


def test_get_dataset_bad_file_reports_loader_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2\n3\n")
    with pytest.raises(FlowmatchError, match="line 2"):
        get_dataset(str(path))


@pytest.mark.parametrize("name", ["digits", "digits-images"])
def test_stored_rows_move_to_the_device_once_and_batches_come_from_there(name):
    """After ``to_device`` a batch is indexed in the device copy (here the meta device, which
    holds no values, so a batch found there cannot have come from the host rows); the
    cached host arrays are left as they were, and the same seed draws the same indices."""
    moved, kept = get_dataset(name), get_dataset(name)
    moved.to_device(torch.device("meta"))
    x, _ = moved.sample_batch(5, torch.Generator().manual_seed(0))
    assert x.device.type == "meta" and x.shape == kept.sample_batch(5, torch.Generator())[0].shape
    y, _ = get_dataset(name).sample_batch(5, torch.Generator().manual_seed(0))
    z, _ = kept.sample_batch(5, torch.Generator().manual_seed(0))
    assert y.device.type == "cpu" and torch.equal(y, z)


@pytest.mark.parametrize("frac", [0.1, 0.3])
def test_a_runs_holdout_fraction_splits_its_data_file(tmp_path, frac):
    path = tmp_path / "points.npy"
    np.save(path, np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    ds = TrainConfig(data=str(path), holdout_fraction=frac).dataset()
    assert ds.test_data.shape == (round(50 * frac), 2)
    assert ds.train_data.shape == (50 - round(50 * frac), 2)
