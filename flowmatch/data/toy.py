"""The eight standard 2-D toy distributions, with the definitions used by FFJORD.

Every generator has the signature ``fn(n, generator) -> Tensor`` of shape (n, 2) and dtype
float32, lives on ``generator.device`` and draws all of its randomness from ``generator``:
the global torch and numpy random states are never read or changed. The constants follow
``lib/toy_data.py`` of FFJORD (which calls scikit-learn's ``make_swiss_roll``,
``make_circles`` and ``make_moons``; their geometry is re-derived here in torch). Where a set
is built from several parts and ``n`` does not divide evenly, the remainder goes to the parts
named in each docstring, so the output always has exactly ``n`` rows.

References:
    Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible
    Generative Models" (ICLR 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int, lookup

__all__ = [
    "STRATIFIED_TOY_SETS",
    "TOY_DATASETS",
    "checkerboard",
    "circles",
    "eight_gaussians",
    "moons",
    "pinwheel",
    "rings",
    "sample_toy",
    "swissroll",
    "two_spirals",
]

_F32 = torch.float32


def _rand(generator: torch.Generator, *shape: int) -> Tensor:
    """U[0, 1) draws of the given shape on the generator's device."""
    return torch.rand(*shape, generator=generator, device=generator.device, dtype=_F32)


def _randn(generator: torch.Generator, *shape: int) -> Tensor:
    """N(0, 1) draws of the given shape on the generator's device."""
    return torch.randn(*shape, generator=generator, device=generator.device, dtype=_F32)


def _shuffle(x: Tensor, generator: torch.Generator) -> Tensor:
    """Permute the rows of ``x`` uniformly at random."""
    perm = torch.randperm(x.shape[0], generator=generator, device=generator.device)
    return x[perm]


def _angles(k: int, stop: float, endpoint: bool, device: torch.device) -> Tensor:
    """``k`` evenly spaced angles from 0 to ``stop``, like ``numpy.linspace``; shape (k,)."""
    if endpoint:
        return torch.linspace(0.0, stop, k, device=device, dtype=_F32)
    return torch.arange(k, device=device, dtype=_F32) * (stop / max(k, 1))


def _unit_circle(theta: Tensor) -> Tensor:
    """Points (cos theta, sin theta) on the unit circle: (k,) -> (k, 2)."""
    return torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)


def swissroll(n: int, generator: torch.Generator) -> Tensor:
    """A noisy 2-D swiss roll.

    With t ~ U[1.5 pi, 4.5 pi], the point is (t cos t, t sin t) + N(0, I), divided by 5
    (``make_swiss_roll(n, noise=1.0)[:, [0, 2]] / 5``).

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    t = 1.5 * math.pi * (1.0 + 2.0 * _rand(generator, n))  # (n,)
    x = t[:, None] * _unit_circle(t)  # (n, 2)
    return (x + _randn(generator, n, 2)) / 5.0


def circles(n: int, generator: torch.Generator) -> Tensor:
    """Two concentric circles of radius 3 and 1.5 with N(0, 0.24^2) noise.

    ``make_circles(n, factor=0.5, noise=0.08) * 3``: the outer circle gets ``n // 2`` evenly
    spaced angles, the inner one the other ``n - n // 2``; rows are shuffled, then noised.

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    n_out = n // 2
    n_in = n - n_out
    dev = generator.device
    outer = _unit_circle(_angles(n_out, 2 * math.pi, False, dev))
    inner = 0.5 * _unit_circle(_angles(n_in, 2 * math.pi, False, dev))
    x = _shuffle(torch.cat([outer, inner]), generator)  # (n, 2)
    return 3.0 * (x + 0.08 * _randn(generator, n, 2))


def rings(n: int, generator: torch.Generator) -> Tensor:
    """Four concentric rings of radius 3, 2.25, 1.5 and 0.75 with N(0, 0.08^2) noise.

    Unit-scale radii 1, 0.75, 0.5 and 0.25 (FFJORD's values) times 3. The three outer rings
    get ``n // 4`` evenly spaced angles each and the innermost ring the remainder; rows are
    shuffled, then noised.

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    k = n // 4
    dev = generator.device
    parts = [
        radius * _unit_circle(_angles(m, 2 * math.pi, False, dev))
        for radius, m in ((1.0, k), (0.75, k), (0.5, k), (0.25, n - 3 * k))
    ]
    x = _shuffle(3.0 * torch.cat(parts), generator)  # (n, 2)
    return x + 0.08 * _randn(generator, n, 2)


def moons(n: int, generator: torch.Generator) -> Tensor:
    """Two interleaving half circles with N(0, 0.2^2) noise.

    ``make_moons(n, noise=0.1) * 2 + (-1, -0.2)``: the upper moon gets ``n // 2`` evenly
    spaced angles in [0, pi] (endpoints included), the lower one the other ``n - n // 2``;
    rows are shuffled, then noised, then scaled and shifted.

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    n_out = n // 2
    n_in = n - n_out
    dev = generator.device
    upper = _unit_circle(_angles(n_out, math.pi, True, dev))
    lower = torch.tensor([1.0, 0.5], device=dev) - _unit_circle(_angles(n_in, math.pi, True, dev))
    x = _shuffle(torch.cat([upper, lower]), generator)  # (n, 2)
    x = x + 0.1 * _randn(generator, n, 2)
    return 2.0 * x + torch.tensor([-1.0, -0.2], device=dev)


def eight_gaussians(n: int, generator: torch.Generator) -> Tensor:
    """A mixture of eight Gaussians on a circle (registered as ``"8gaussians"``).

    Each point picks one of the eight compass directions uniformly, sits at radius 4 in that
    direction plus N(0, 0.5^2 I) noise, and the whole set is divided by 1.414.

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    dev = generator.device
    centers = 4.0 * _unit_circle(_angles(8, 2 * math.pi, False, dev))  # (8, 2)
    idx = torch.randint(8, (n,), generator=generator, device=dev)
    return (centers[idx] + 0.5 * _randn(generator, n, 2)) / 1.414


def pinwheel(n: int, generator: torch.Generator) -> Tensor:
    """Five curved arms (radial std 0.3, tangential std 0.1, rate 0.25), times 2.

    A point of arm c starts at (1 + 0.3 e1, 0.1 e2) and is rotated by
    -(2 pi c / 5 + 0.25 exp(1 + 0.3 e1)). Each arm gets ``n // 5`` points and the first
    ``n % 5`` arms one more; rows are shuffled.

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    dev = generator.device
    num_arms = 5
    labels = torch.arange(n, device=dev) % num_arms  # (n,) balanced arm labels
    f = _randn(generator, n, 2) * torch.tensor([0.3, 0.1], device=dev)
    f[:, 0] += 1.0
    angle = labels.to(_F32) * (2 * math.pi / num_arms) + 0.25 * torch.exp(f[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    # Row vector times [[c, -s], [s, c]], as in FFJORD's einsum.
    x = torch.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], dim=1)
    return 2.0 * _shuffle(x, generator)


def two_spirals(n: int, generator: torch.Generator) -> Tensor:
    """Two interleaved spirals (registered as ``"2spirals"``).

    With r = sqrt(u) * 3 pi, u ~ U[0, 1), an arm point is (-r cos r, r sin r) + U[0, 0.5)^2;
    the second arm is the point reflection of the first; both are divided by 3 and get
    N(0, 0.1^2) noise. The first arm has ``n - n // 2`` rows, the second ``n // 2`` (the
    reflections of the first ``n // 2`` points of arm one). As in FFJORD the rows are not
    shuffled: the first rows are arm one, the last ones arm two.

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    m = n - n // 2
    r = torch.sqrt(_rand(generator, m)) * (3 * math.pi)  # (m,)
    arm = torch.stack([-torch.cos(r) * r, torch.sin(r) * r], dim=1)  # (m, 2)
    arm = arm + 0.5 * _rand(generator, m, 2)
    x = torch.cat([arm, -arm[: n // 2]]) / 3.0  # (n, 2)
    return x + 0.1 * _randn(generator, n, 2)


def checkerboard(n: int, generator: torch.Generator) -> Tensor:
    """Uniform points on the eight occupied squares of a 4 x 4 checkerboard on [-4, 4]^2.

    x1 ~ U[-2, 2), x2 = U[0, 1) - 2 b + (floor(x1) mod 2) with b ~ Bernoulli(1/2); both are
    then doubled, so a point is occupied exactly when floor(x1 / 2) + floor(x2 / 2) is even.

    Args:
        n: number of points, at least 1.
        generator: source of all randomness.

    Returns:
        Points of shape (n, 2).
    """
    x1 = 4.0 * _rand(generator, n) - 2.0
    b = torch.randint(2, (n,), generator=generator, device=generator.device).to(_F32)
    x2 = _rand(generator, n) - 2.0 * b + torch.remainder(torch.floor(x1), 2.0)
    return 2.0 * torch.stack([x1, x2], dim=1)


TOY_DATASETS: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    "swissroll": swissroll,
    "circles": circles,
    "rings": rings,
    "moons": moons,
    "8gaussians": eight_gaussians,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
    "checkerboard": checkerboard,
}

STRATIFIED_TOY_SETS = frozenset({"circles", "rings", "moons"})
"""Sets whose ``n`` points are not independent draws: as in FFJORD (scikit-learn's
``make_circles``/``make_moons``), every call splits the points evenly between the parts and
puts them on an even grid of angles, so only the noise is random. Two such draws are closer to
each other than independent samples of the same distribution are."""


def sample_toy(name: str, n: int, generator: torch.Generator) -> Tensor:
    """Draw ``n`` points from the toy distribution called ``name``.

    Args:
        name: one of the keys of :data:`TOY_DATASETS`.
        n: number of points, at least 1.
        generator: source of all randomness; the output lives on its device.

    Returns:
        Points of shape (n, 2), dtype float32.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_toy("moons", 5, g).shape
        torch.Size([5, 2])
    """
    fn = lookup(TOY_DATASETS, name, "toy dataset")
    check_int(n, "the number of points n")
    if not isinstance(generator, torch.Generator):
        raise FlowmatchError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "pass e.g. torch.Generator().manual_seed(0)"
        )
    return fn(n, generator)
