"""Data sources for training and evaluation: built-in toy sets and arrays loaded from files."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.files import load_array
from flowmatch.data.quantization import Quantization
from flowmatch.data.toy import STRATIFIED_TOY_SETS, TOY_DATASETS, sample_toy
from flowmatch.errors import FlowmatchError, check_int, check_points, lookup

__all__ = ["DATASETS", "ArrayDataset", "Dataset", "ToyDataset", "get_dataset"]

# Size of a toy set's held-out draw when the caller does not say.
DEFAULT_TOY_HELD_OUT = 2000


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise FlowmatchError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "pass e.g. torch.Generator().manual_seed(0)"
        )


class Dataset(ABC):
    """A source of samples x1 (t = 1, the data end of a flow).

    Attributes:
        name: what the user passed: a built-in name or a file path.
        dim: number of features per sample, D.
        shape: shape of one sample, ``(D,)`` for vectors or e.g. ``(C, H, W)`` for images.
        condition: what each sample's condition c is (a class label, a vector), or None for
            unconditional data; :meth:`sample_batch` returns the conditions with the samples.
        per_feature_standardization: standardize each feature on its own (vectors) or all
            with one shared mean and std (images).
        quantization: the value grid of discrete-valued data (draws are then dequantized and
            bits/dim use its bin width; ``held_out(n, g, dequantize=False)`` then returns the
            grid values), or None for continuous data.
    """

    name: str
    dim: int
    shape: tuple[int, ...]
    condition: ConditionSpec | None = None
    per_feature_standardization: bool = True
    quantization: Quantization | None = None

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` training samples, shape (n, D), using only ``generator``'s randomness."""

    @abstractmethod
    def held_out(self, n: int | None, generator: torch.Generator) -> Tensor:
        """Evaluation samples, never used for training, shape (m, D)."""

    def sample_batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """Draw ``n`` training samples (n, ...) with their conditions (n, ...), or None.

        Uses the generator exactly as :meth:`sample` does, so the samples are the same.
        """
        return self.sample(n, generator), None

    def to_device(self, device: torch.device) -> None:
        """Keep the stored training rows on ``device``, so batches are indexed there.

        Called once by training: the rows cross to the device once, not a batch a step. The
        random draws (row indices, dequantization noise) still come from the caller's CPU
        generator, so a seed draws the same batches on every device. A set drawn afresh
        each time (the 2-D toy generators) stores nothing and stays as it is.
        """
        return

    def iid_sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` independent draws from the data distribution, shape (n, ...).

        This is what a perfect model's samples are, so the distance between it and the
        held-out data is the floor a model is judged against. It equals :meth:`sample` unless
        a set draws its batches stratified.
        """
        return self.sample(n, generator)

    def held_out_batch(
        self, n: int | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`held_out` with the conditions of the held-out samples (None if unconditional)."""
        return self.held_out(n, generator), None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


IID_POOL = 64
"""Pool size per requested point from which :meth:`ToyDataset.iid_sample` picks rows."""


class ToyDataset(Dataset):
    """One of the 2-D toy distributions of :data:`~flowmatch.data.toy.TOY_DATASETS`.

    The distribution is known in closed form, so training and held-out data are both fresh
    draws.

    Args:
        name: a key of :data:`~flowmatch.data.toy.TOY_DATASETS`.

    Example:
        >>> ds = ToyDataset("8gaussians")
        >>> ds.sample(4, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 2])
    """

    def __init__(self, name: str) -> None:
        lookup(TOY_DATASETS, name, "toy dataset")
        self.name = name
        self.dim = 2
        self.shape = (2,)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` fresh points, shape (n, 2)."""
        return sample_toy(self.name, n, generator)

    def held_out(self, n: int | None, generator: torch.Generator) -> Tensor:
        """Draw ``n`` fresh points (2000 when ``n`` is None), shape (n, 2)."""
        return sample_toy(self.name, DEFAULT_TOY_HELD_OUT if n is None else n, generator)

    def iid_sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` independent points, shape (n, 2).

        For the stratified sets (:data:`~flowmatch.data.toy.STRATIFIED_TOY_SETS`: even split
        between parts, angles on a grid) these are ``n`` rows picked at random, without
        replacement, from one draw of ``IID_POOL * n`` points, so the parts' counts and the
        angles vary as they do in independent samples; for the others a plain draw.
        """
        if self.name not in STRATIFIED_TOY_SETS:
            return self.sample(n, generator)
        pool = sample_toy(self.name, IID_POOL * n, generator)
        pick = torch.randperm(pool.shape[0], generator=generator, device=generator.device)
        return pool[pick[:n]]


class ArrayDataset(Dataset):
    """A finite set of samples, split once into training and test rows.

    The split is a random permutation drawn from ``split_seed`` alone, so it is the same on
    every run and machine. The test part has ``round(N * holdout_fraction)`` rows, clamped
    to [1, N - 1] so that both parts are non-empty; hence at least 2 samples are required.

    Args:
        x: samples of shape (N, D) or (N, *shape), floating point and finite.
        name: what the user called the data (e.g. the file path).
        holdout_fraction: share of rows held out for evaluation, in (0, 1).
        split_seed: seed of the train/test permutation.
        cond: optional conditions, one row per sample: integer class labels (N,) or
            vectors (N, d); they are split and drawn together with ``x``.
        condition: what ``cond`` is; inferred from it when omitted.

    Attributes:
        train_data: training rows, shape (N_train, ...).
        test_data: held-out rows, shape (N_test, ...).
        train_cond: conditions of the training rows (or None).
        test_cond: conditions of the held-out rows (or None).

    Example:
        >>> ds = ArrayDataset(torch.randn(10, 3), "demo", holdout_fraction=0.2)
        >>> ds.train_data.shape, ds.test_data.shape
        (torch.Size([8, 3]), torch.Size([2, 3]))
    """

    def __init__(
        self,
        x: Tensor,
        name: str,
        holdout_fraction: float = 0.1,
        split_seed: int = 0,
        *,
        cond: Tensor | None = None,
        condition: ConditionSpec | None = None,
    ) -> None:
        check_points(x, name)
        if x.shape[0] < 2:
            raise FlowmatchError(
                f"{name}: has {x.shape[0]} sample but training needs at least 2 "
                "(one to train on, one to evaluate); add more samples"
            )
        if not 0.0 < holdout_fraction < 1.0:
            raise FlowmatchError(
                f"holdout_fraction must be strictly between 0 and 1, got {holdout_fraction!r}"
            )
        n_rows = x.shape[0]
        n_test = min(max(round(n_rows * holdout_fraction), 1), n_rows - 1)
        split = torch.Generator().manual_seed(split_seed)
        perm = torch.randperm(n_rows, generator=split).to(x.device)  # (N,)
        self.name = name
        self.dim = x[0].numel()
        self.shape = tuple(x.shape[1:])
        self.test_data = x[perm[:n_test]]  # (N_test, ...)
        self.train_data = x[perm[n_test:]]  # (N_train, ...)
        self.train_cond = self.test_cond = None
        if cond is not None:
            self.condition = condition if condition is not None else ConditionSpec.infer(cond)
            cond = self.condition.check(cond.to(x.device), n_rows, f"{name} conditions")
            self.test_cond, self.train_cond = cond[perm[:n_test]], cond[perm[n_test:]]
        elif condition is not None:
            raise FlowmatchError(f"{name}: a condition spec was given without conditions")

    def to_device(self, device: torch.device) -> None:
        """Move the training rows and their conditions to ``device`` (the held-out rows stay,
        for evaluation on the host)."""
        self.train_data = self.train_data.to(device)
        if self.train_cond is not None:
            self.train_cond = self.train_cond.to(device)

    def _train_index(self, n: int, generator: torch.Generator) -> Tensor:
        check_int(n, "n")
        _check_generator(generator)
        idx = torch.randint(
            self.train_data.shape[0], (n,), generator=generator, device=generator.device
        )
        return idx.to(self.train_data.device)

    def _test_index(self, n: int | None, generator: torch.Generator) -> Tensor | None:
        """Rows of the held-out draw, or None for all of them."""
        if n is None:
            return None
        check_int(n, "n")
        _check_generator(generator)
        m = self.test_data.shape[0]
        if n >= m:
            return None
        idx = torch.randperm(m, generator=generator, device=generator.device)[:n]
        return idx.to(self.test_data.device)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` training rows uniformly with replacement, shape (n, ...)."""
        return self.train_data[self._train_index(n, generator)]

    def sample_batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """Draw ``n`` training rows and their conditions (or None), with replacement."""
        idx = self._train_index(n, generator)
        cond = None if self.train_cond is None else self.train_cond[idx]
        return self.train_data[idx], cond

    def held_out(self, n: int | None, generator: torch.Generator) -> Tensor:
        """All test rows when ``n`` is None, else ``min(n, N_test)`` of them without replacement."""
        idx = self._test_index(n, generator)
        return self.test_data if idx is None else self.test_data[idx]

    def held_out_batch(
        self, n: int | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`held_out` with the conditions of the rows (or None)."""
        idx = self._test_index(n, generator)
        if idx is None:
            return self.test_data, self.test_cond
        return self.test_data[idx], None if self.test_cond is None else self.test_cond[idx]


DATASETS: dict[str, Callable[[], Dataset]] = {
    name: partial(ToyDataset, name) for name in TOY_DATASETS
}


def _lazy(module: str, factory: str) -> Callable[[], Dataset]:
    """A registry entry that imports its module only when the data set is asked for."""

    def build() -> Dataset:
        return getattr(importlib.import_module(module), factory)()

    return build


# labelled images (condition: the class) and robot demonstrations (condition: observation)
DATASETS["digits-images"] = _lazy("flowmatch.data.images", "digits_images")
DATASETS["fashion-mnist"] = _lazy("flowmatch.data.images", "fashion_mnist")
# images with captions (condition: a prompt, token ids; see data/captions.py)
DATASETS["digits-captions"] = _lazy("flowmatch.data.captions", "digits_captions")
DATASETS["fashion-captions"] = _lazy("flowmatch.data.captions", "fashion_captions")
DATASETS["point-robot"] = _lazy("flowmatch.envs.point_robot", "demonstration_dataset")
# ... and seen by a camera, told an instruction (condition: {image, instruction})
DATASETS["point-robot-instructed"] = _lazy("flowmatch.envs.instructed_robot", "instruction_dataset")
# 64-D vectors of 17 grey levels for density estimation, dequantized (see data/digits.py)
DATASETS["digits"] = _lazy("flowmatch.data.digits", "DigitsDataset")


def get_dataset(spec: str | Path, holdout_fraction: float = 0.1) -> Dataset:
    """Build the data set named by ``spec``: a registered name, else a data file's path.

    Files are read with :func:`~flowmatch.data.files.load_array` and split by
    :class:`ArrayDataset` (``holdout_fraction`` of the rows held out). A folder of PNG/JPEG
    images, or an ``.npz`` holding an array named ``images``, is read by
    :func:`~flowmatch.data.image_files.load_image_files` (split the same way).

    Args:
        spec: a key of :data:`DATASETS`, the path of a ``.npy``, ``.npz`` or ``.csv`` file,
            or of an image folder.
        holdout_fraction: share of a file's rows held out for evaluation, in (0, 1); the
            built-in sets have their own fixed splits.

    Returns:
        The data set.

    Example:
        >>> get_dataset("moons")
        ToyDataset(name='moons', dim=2)
    """
    if not isinstance(spec, (str, Path)):
        raise FlowmatchError(f"dataset must be a name or a path, got {type(spec).__name__}")
    factory = DATASETS.get(str(spec))
    if factory is not None:
        return factory()
    if not Path(spec).exists():
        raise FlowmatchError(
            f"unknown dataset {str(spec)!r}: not a built-in ({', '.join(DATASETS)}) "
            "and no such file"
        )
    from flowmatch.data.image_files import is_image_npz, load_image_files

    if Path(spec).is_dir() or is_image_npz(spec):  # the user's images
        return load_image_files(spec, holdout_fraction)
    return ArrayDataset(load_array(spec), name=str(spec), holdout_fraction=holdout_fraction)
