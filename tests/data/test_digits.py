"""The built-in digits set: a fixed train/val/test split of 17-level pixels, dequantized draws."""

from __future__ import annotations

import numpy as np
import torch

from flowmatch.data import DATASETS, get_dataset
from flowmatch.data.digits import DigitsDataset, digit_levels


def _sorted_rows(x: torch.Tensor) -> np.ndarray:
    a = x.numpy()
    return a[np.lexsort(a.T[::-1])]


def test_split_is_fixed_disjoint_and_complete():
    from sklearn.datasets import load_digits

    levels = digit_levels()
    sizes = {k: v.shape for k, v in levels.items()}
    assert sizes == {"train": (1257, 64), "val": (180, 64), "test": (360, 64)}
    every = torch.cat([levels["train"], levels["val"], levels["test"]])
    np.testing.assert_array_equal(
        _sorted_rows(every), _sorted_rows(torch.from_numpy(load_digits().data).float())
    )
    digit_levels.cache_clear()  # rebuilt from the seed alone: the same split
    again = digit_levels()
    assert all(torch.equal(levels[k], again[k]) for k in levels)


def test_draws_are_dequantized_rows_of_their_split():
    ds = get_dataset("digits")
    assert "digits" in DATASETS and isinstance(ds, DigitsDataset)
    assert ds.dim == 64 and ds.shape == (64,) and ds.quantization.levels == 17
    g = torch.Generator().manual_seed(0)
    x = ds.sample(500, g)
    assert x.shape == (500, 64) and bool(((x >= 0) & (x < 17)).all())
    train = {tuple(r) for r in ds.levels["train"].tolist()}
    assert all(tuple(r) in train for r in x.floor().tolist())
    assert (x - x.floor()).std() > 0.2  # the fractional part is the U[0, 1) noise
    test = ds.held_out(None, g)
    torch.testing.assert_close(test.floor(), ds.levels["test"])
    assert ds.held_out(10, g).shape == (10, 64) and ds.validation(None, g).shape == (180, 64)


def test_draws_use_only_the_generator():
    ds = DigitsDataset()
    a = ds.sample(8, torch.Generator().manual_seed(3))
    torch.manual_seed(123)
    b = ds.sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, ds.sample(8, torch.Generator().manual_seed(4)))
