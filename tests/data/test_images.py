"""Labelled image sets: idx files, Fashion-MNIST's missing-file error, digits, label pairing."""

import gzip

import numpy as np
import pytest
import torch

from flowmatch.data import ArrayDataset, Standardizer, get_dataset
from flowmatch.data.images import FASHION_MNIST_FILES, fashion_mnist, read_idx
from flowmatch.errors import FlowmatchError


def write_idx(path, arr: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    gzip_bytes = gzip.compress(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())
    path.write_bytes(gzip_bytes)


def fake_fashion(root, n_train=6, n_test=4):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        img_file, lab_file = FASHION_MNIST_FILES[split]
        write_idx(root / img_file, images)
        write_idx(root / lab_file, labels)
        arrays[split] = (images, labels)
    return arrays


def test_read_idx_round_trip_and_dtypes(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "a.gz", a, code=0x0C)
    b = read_idx(tmp_path / "a.gz")
    assert b.dtype == np.int32 and np.array_equal(a, b)


def test_damaged_idx_files_are_rejected(tmp_path):
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(FlowmatchError, match="not an idx file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(FlowmatchError, match="damaged"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    with pytest.raises(FlowmatchError, match="cannot be read"):
        read_idx(tmp_path / "bad.gz")


def test_fashion_mnist_from_idx_files(tmp_path):
    arrays = fake_fashion(tmp_path)
    ds = fashion_mnist(tmp_path)
    assert ds.shape == (1, 28, 28) and ds.condition.size == 10
    assert ds.condition.names[9] == "Ankle boot"
    images, labels = arrays["train"]
    torch.testing.assert_close(ds.train_data[:, 0], torch.from_numpy(images / 255.0).float())
    assert ds.train_cond.tolist() == labels.tolist()
    assert ds.test_data.shape == (4, 1, 28, 28)


def test_missing_fashion_mnist_names_the_install_command(tmp_path):
    with pytest.raises(FlowmatchError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist(tmp_path)
    fake_fashion(tmp_path)
    (tmp_path / FASHION_MNIST_FILES["test"][1]).unlink()
    with pytest.raises(FlowmatchError, match="t10k-labels"):
        fashion_mnist(tmp_path)


def test_digits_images():
    ds = get_dataset("digits-images")
    assert ds.shape == (1, 8, 8) and not ds.per_feature_standardization
    assert float(ds.train_data.min()) == 0.0 and float(ds.train_data.max()) == 1.0
    assert set(ds.train_cond.tolist()) == set(range(10))
    x, c = ds.sample_batch(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 1, 8, 8) and c.shape == (16,) and c.dtype == torch.long
    # sample_batch draws the same rows as sample, with their own labels
    torch.testing.assert_close(x, ds.sample(16, torch.Generator().manual_seed(0)))


def test_conditions_travel_with_their_samples():
    x = torch.arange(30, dtype=torch.float32).reshape(30, 1).repeat(1, 2)
    labels = torch.arange(30) % 3
    ds = ArrayDataset(x, "toy", holdout_fraction=0.2, cond=labels)
    assert ds.condition.kind == "class" and ds.condition.size == 3
    xb, cb = ds.sample_batch(50, torch.Generator().manual_seed(1))
    assert torch.equal(xb[:, 0].long() % 3, cb)
    xh, ch = ds.held_out_batch(4, torch.Generator().manual_seed(2))
    assert torch.equal(xh[:, 0].long() % 3, ch)
    vec = ArrayDataset(x, "toy", cond=x[:, :1] * 2)
    assert vec.condition.kind == "vector" and vec.condition.size == 1
    xb, cb = vec.sample_batch(8, torch.Generator().manual_seed(1))
    torch.testing.assert_close(cb, xb[:, :1] * 2)


def test_bad_data_conditions_are_rejected():
    x = torch.zeros(4, 2)
    with pytest.raises(FlowmatchError, match="one row per sample"):
        ArrayDataset(x, "toy", cond=torch.zeros(3, dtype=torch.long))
    with pytest.raises(FlowmatchError, match=">= 0"):
        ArrayDataset(x, "toy", cond=torch.tensor([0, 1, -1, 2]))


def test_global_standardization_pools_all_features():
    x = torch.tensor([[0.0, 4.0], [2.0, 6.0]], dtype=torch.float64)
    s = Standardizer.fit(x, per_feature=False)
    torch.testing.assert_close(s.mean, torch.full((2,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(s.std, x.std(correction=0).expand(2))
    torch.testing.assert_close(s.inverse(s.forward(x)), x)
