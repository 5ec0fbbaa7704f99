"""Source distributions p0 at t = 0: N(0, I) by default, or any data set (e.g. moons).

A source lives in the standardized coordinates the velocity network works in. The default
``gaussian`` source is N(0, I) there, as in the flow-matching tutorial. Any other source is
given in its own data units (a built-in data set or a file) and standardized with its *own*
statistics, so both ends of the flow are centered and of unit scale for the network, whatever
their units; :meth:`Source.unstandardize` maps points back to the source's units (``invert``
returns them so). A data set has no closed-form density, so ``log_prob`` is only defined for
the Gaussian source.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from flowmatch.data.dataset import DATASETS, Dataset, get_dataset
from flowmatch.data.standardize import Standardizer
from flowmatch.errors import FlowmatchError

__all__ = [
    "SOURCES",
    "DataSource",
    "GaussianSource",
    "Source",
    "build_source",
    "dataset_statistics",
    "resolve_source_spec",
    "standard_normal_log_prob",
]

STATS_SAMPLES = 100_000  # draws used to estimate the statistics of a built-in generator
STATS_SEED = 2**31 - 1


def dataset_statistics(dataset: Dataset) -> tuple[Tensor, Tensor]:
    """Per-feature mean and std (D,) of a data set's training rows, or of many draws."""
    train = getattr(dataset, "train_data", None)
    if train is None:
        train = dataset.sample(STATS_SAMPLES, torch.Generator().manual_seed(STATS_SEED))
    st = Standardizer.fit(train.reshape(train.shape[0], -1).float())
    return st.mean, st.std


def _generator(generator: torch.Generator | None) -> torch.Generator:
    """The given generator, or a fresh one seeded from the global RNG (non-reproducible)."""
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(int(torch.randint(2**62, ()).item()))


LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log p_0(z) of N(0, I): -(||z||^2 + D log 2 pi) / 2 for z (B, D); returns (B,).

    Example:
        >>> round(standard_normal_log_prob(torch.zeros(1, 2)).item(), 6)  # -log(2 pi)
        -1.837877
    """
    return -0.5 * (z.square().sum(dim=1) + z.shape[1] * LOG_2PI)


class Source(nn.Module):
    """The distribution p0 of x0 at t = 0, sampled in the network's standardized units.

    Attributes:
        spec: what the user passed (``"gaussian"``, a data set name or a file path).
        has_density: whether :meth:`log_prob` is defined.
    """

    spec: str
    has_density: bool = False

    def sample(
        self, n: int, shape: tuple[int, ...], generator: torch.Generator | None = None
    ) -> Tensor:
        """n draws of x0 in standardized units, (n, *shape), on the CPU."""
        raise NotImplementedError

    def standardize(self, x: Tensor) -> Tensor:
        """Source units -> standardized units."""
        return x

    def unstandardize(self, z: Tensor) -> Tensor:
        """Standardized units -> source units."""
        return z

    def log_prob(self, z: Tensor) -> Tensor:
        """log p0(z) in standardized units for z (B, D); returns (B,)."""
        self.check_density()
        raise NotImplementedError

    def check_density(self) -> None:
        """Raise a one-line error if this source has no closed-form density."""
        if not self.has_density:
            raise FlowmatchError(
                f"the source '{self.spec}' is a data set without a closed-form density, so "
                "log-densities are undefined; train with the gaussian source to get log_prob"
            )


class GaussianSource(Source):
    """p0 = N(0, I) in standardized units, the tutorial's noise.

    Example:
        >>> GaussianSource().sample(3, (2,), torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
    """

    spec = "gaussian"
    has_density = True

    def sample(
        self, n: int, shape: tuple[int, ...], generator: torch.Generator | None = None
    ) -> Tensor:
        return torch.randn(n, *shape, generator=generator)

    def log_prob(self, z: Tensor) -> Tensor:
        return standard_normal_log_prob(z.reshape(z.shape[0], -1))


class DataSource(Source):
    """p0 = a data set (built-in or file), standardized with its own mean and std.

    The statistics are buffers, so they are saved with the model's weights and a loaded model
    uses exactly the ones it was trained with.

    Args:
        spec: a built-in data set name or a data file path.
        dataset: the data set named by ``spec``.
        mean: (D,) per-feature mean of the source.
        std: (D,) per-feature standard deviation of the source.
    """

    def __init__(self, spec: str, dataset: Dataset, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.spec = str(spec)
        self.dataset = dataset
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float())

    def sample(
        self, n: int, shape: tuple[int, ...], generator: torch.Generator | None = None
    ) -> Tensor:
        x = self.dataset.sample(n, _generator(generator)).reshape(n, -1).float()  # (n, D)
        return self.standardize(x.to(self.mean.device)).reshape(n, *shape).cpu()

    def standardize(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        return ((flat - self.mean) / self.std).reshape(x.shape)

    def unstandardize(self, z: Tensor) -> Tensor:
        flat = z.reshape(z.shape[0], -1)
        return (flat * self.std + self.mean).reshape(z.shape)


SOURCES: dict[str, Callable[[], Source]] = {"gaussian": GaussianSource}
"""Named sources that are not data sets; every data set name (and any file) is a source too."""


def resolve_source_spec(spec: str) -> str:
    """A source spec as saved in a run: names unchanged, a file as its absolute path."""
    if spec in SOURCES or spec in DATASETS or not Path(spec).exists():
        return spec  # a missing file keeps the user's spelling for the error message
    return str(Path(spec).resolve())


def build_source(spec: str, shape: tuple[int, ...], *, standardize: bool = True) -> Source:
    """The source named by ``spec`` for samples of ``shape``.

    Args:
        spec: ``"gaussian"``, a built-in data set name, or a ``.npy``/``.npz``/``.csv`` file.
        shape: the shape of one data sample; the source must have as many features.
        standardize: standardize a data source with its statistics (else keep its units, as a
            run trained with ``--no-standardize`` keeps the data's).

    Returns:
        The source; a data source carries its statistics (estimated like the data's).

    Example:
        >>> build_source("moons", (2,)).sample(4, (2,), torch.Generator().manual_seed(0)).shape
        torch.Size([4, 2])
    """
    if not isinstance(spec, str) or not spec:
        raise FlowmatchError(
            f"a source must be 'gaussian', a data set name or a file, got {spec!r}"
        )
    if spec in SOURCES:
        return SOURCES[spec]()
    try:
        dataset = get_dataset(spec)
    except FlowmatchError as exc:
        raise FlowmatchError(
            f"the source {spec!r} is neither 'gaussian' nor a data set ({exc})"
        ) from None
    dim = int(torch.tensor(shape).prod())
    if dataset.dim != dim:
        raise FlowmatchError(
            f"the source {spec!r} has {dataset.dim} features per sample but the data has {dim}; "
            "a flow maps between spaces of one dimension"
        )
    mean, std = dataset_statistics(dataset)
    if not standardize:
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    return DataSource(spec, dataset, mean, std)
