"""scikit-learn's 8x8 handwritten digits as 64-D vectors of 17 grey levels, for density estimation.

The 1797 images are split once, by a seeded permutation, into training (1257), validation
(180) and test (360) rows. Pixels take the integer values 0..16, so the set is discrete:
:attr:`DigitsDataset.quantization` says so, every draw is uniformly dequantized to
[0, 17)^64, and bits per dimension are reported with a bin width of 1 (one grey level).

References:
    Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits" (UCI, 1998).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor

from flowmatch.data.dataset import Dataset, _check_generator
from flowmatch.data.quantization import Quantization
from flowmatch.errors import check_int

__all__ = ["DIGITS_SPLIT", "DIGITS_SPLIT_SEED", "DigitsDataset", "digit_levels"]

DIGITS_SPLIT = {"test": 360, "val": 180}
"""Rows held out for testing and validation; the other 1257 are for training."""

DIGITS_SPLIT_SEED = 0


@cache
def digit_levels() -> dict[str, Tensor]:
    """The raw grey levels (float32, 0..16) of each split: ``train``, ``val``, ``test``."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn, never downloaded

    x = torch.from_numpy(load_digits().data.astype(np.float32))  # (1797, 64)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    n_test, n_val = DIGITS_SPLIT["test"], DIGITS_SPLIT["val"]
    return {
        "test": x[perm[:n_test]],
        "val": x[perm[n_test : n_test + n_val]],
        "train": x[perm[n_test + n_val :]],
    }


class DigitsDataset(Dataset):
    """The digits as a 64-D density-estimation set with a fixed train/val/test split.

    Every draw is dequantized with noise from the caller's generator: :meth:`sample` returns
    training rows y = x + u, u ~ U[0, 1)^64, and :meth:`held_out` the test rows dequantized
    the same way (so a seed fixes the evaluation noise too). The raw levels are in
    :attr:`levels`.

    Attributes:
        quantization: 17 levels 0..16 of width 1.
        levels: the raw grey levels of the ``train``, ``val`` and ``test`` splits.

    Example:
        >>> ds = DigitsDataset()
        >>> g = torch.Generator().manual_seed(0)
        >>> ds.sample(5, g).shape, ds.held_out(None, g).shape, ds.quantization.levels
        (torch.Size([5, 64]), torch.Size([360, 64]), 17)
    """

    quantization = Quantization(levels=17, bin_width=1.0, low=0.0)

    def __init__(self) -> None:
        self.name = "digits"
        self.dim = 64
        self.shape = (64,)
        self.levels = digit_levels()

    def _draw(
        self,
        split: str,
        n: int | None,
        generator: torch.Generator,
        replace: bool,
        dequantize: bool = True,
    ) -> Tensor:
        _check_generator(generator)
        rows = self.levels[split]
        if n is not None:
            check_int(n, "n")
            if replace:
                idx = torch.randint(rows.shape[0], (n,), generator=generator)
                rows = rows[idx.to(rows.device)]
            elif n < rows.shape[0]:
                rows = rows[torch.randperm(rows.shape[0], generator=generator)[:n]]
        return self.quantization.dequantize(rows, generator) if dequantize else rows.clone()

    def to_device(self, device: torch.device) -> None:
        """Keep the training rows on ``device`` (a new dict: the cached levels stay)."""
        self.levels = {**self.levels, "train": self.levels["train"].to(device)}

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` training rows drawn with replacement, dequantized, (n, 64)."""
        check_int(n, "n")
        return self._draw("train", n, generator, replace=True)

    def held_out(
        self, n: int | None, generator: torch.Generator, *, dequantize: bool = True
    ) -> Tensor:
        """The test rows (all when ``n`` is None, else ``min(n, 360)`` of them), dequantized.

        With ``dequantize=False`` the same rows as grey levels, for several dequantizations
        of each (:func:`~flowmatch.likelihood.dequantized_log_prob`).
        """
        return self._draw("test", n, generator, replace=False, dequantize=dequantize)

    def validation(self, n: int | None, generator: torch.Generator) -> Tensor:
        """The validation rows (all when ``n`` is None), dequantized, for model selection."""
        return self._draw("val", n, generator, replace=False)
