"""Unnormalized 2-D target densities p(z) ∝ exp(-U(z)): the Rezende–Mohamed test energies.

An :class:`Energy` is a function U: (N, 2) -> (N,) together with the box on which its target
is stated. U2, U3 and U4 do not grow along z1, so exp(-U) has infinite mass on the plane:
their targets only make sense on a box, p_B(z) = exp(-U(z)) 1_B(z) / Z_B. Fitting a flow (which
lives on the whole plane) by reverse KL therefore uses :meth:`Energy.confined`, U plus a
steep quadratic wall outside the box, and the fit is judged against p_B.

References:
    Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015), table 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, lookup

__all__ = ["DEFAULT_BOX", "ENERGIES", "WALL_WIDTH", "Energy", "get_energy", "u1", "u2", "u3", "u4"]

Box = tuple[float, float, float, float]
DEFAULT_BOX: Box = (-4.0, 4.0, -4.0, 4.0)  # (z1 min, z1 max, z2 min, z2 max), as in the paper
WALL_WIDTH = 0.1  # the confining wall adds (distance outside the box / WALL_WIDTH)^2 / 2


def _w1(z: Tensor) -> Tensor:
    return torch.sin(0.5 * math.pi * z[:, 0])  # sin(2 pi z1 / 4)


def _w2(z: Tensor) -> Tensor:
    return 3.0 * torch.exp(-0.5 * ((z[:, 0] - 1.0) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3.0 * torch.sigmoid((z[:, 0] - 1.0) / 0.3)


def _neg_log_sum_exp(*terms: Tensor) -> Tensor:
    """-log Σ_i exp(t_i), stable."""
    return -torch.logsumexp(torch.stack(terms), dim=0)


def u1(z: Tensor) -> Tensor:
    """A ring of radius 2 with its mass on two arcs around z1 = ±2:
    U1 = ((||z|| - 2) / 0.4)^2 / 2
         - log(exp(-((z1 - 2) / 0.6)^2 / 2) + exp(-((z1 + 2) / 0.6)^2 / 2)).
    """
    ring = 0.5 * ((z.norm(dim=1) - 2.0) / 0.4) ** 2
    left = -0.5 * ((z[:, 0] + 2.0) / 0.6) ** 2
    right = -0.5 * ((z[:, 0] - 2.0) / 0.6) ** 2
    return ring + _neg_log_sum_exp(left, right)


def u2(z: Tensor) -> Tensor:
    """A sine wave: U2 = ((z2 - w1(z)) / 0.4)^2 / 2, w1(z) = sin(2 pi z1 / 4)."""
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2


def u3(z: Tensor) -> Tensor:
    """A sine wave that splits in two around z1 = 1:
    U3 = -log(exp(-((z2 - w1) / 0.35)^2 / 2) + exp(-((z2 - w1 + w2) / 0.35)^2 / 2)),
    w2(z) = 3 exp(-((z1 - 1) / 0.6)^2 / 2).
    """
    a = -0.5 * ((z[:, 1] - _w1(z)) / 0.35) ** 2
    b = -0.5 * ((z[:, 1] - _w1(z) + _w2(z)) / 0.35) ** 2
    return _neg_log_sum_exp(a, b)


def u4(z: Tensor) -> Tensor:
    """A sine wave and a shifted copy that parts from it past z1 = 1:
    U4 = -log(exp(-((z2 - w1) / 0.4)^2 / 2) + exp(-((z2 - w1 + w3) / 0.35)^2 / 2)),
    w3(z) = 3 sigmoid((z1 - 1) / 0.3).
    """
    a = -0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2
    b = -0.5 * ((z[:, 1] - _w1(z) + _w3(z)) / 0.35) ** 2
    return _neg_log_sum_exp(a, b)


@dataclass(frozen=True)
class Energy:
    """An energy U(z) on R^2 and the box B on which its target p_B ∝ exp(-U) 1_B is stated.

    Attributes:
        name: how to call it in reports and run folders.
        fn: U, a map (N, 2) -> (N,), differentiable.
        box: B = [z1 min, z1 max] x [z2 min, z2 max].

    Example:
        >>> e = ENERGIES["U2"]
        >>> e(torch.zeros(3, 2)).tolist()
        [0.0, 0.0, 0.0]
        >>> float(e.confined(torch.tensor([[4.1, 0.0]]))) > float(e(torch.tensor([[4.1, 0.0]])))
        True
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    box: Box = DEFAULT_BOX

    def __call__(self, z: Tensor) -> Tensor:
        """U(z), (N, 2) -> (N,)."""
        return self.fn(z)

    def confined(self, z: Tensor) -> Tensor:
        """U(z) + d(z, B)^2 / (2 WALL_WIDTH^2): normalizable on R^2, equal to U inside B."""
        lo = z.new_tensor(self.box[0::2])
        hi = z.new_tensor(self.box[1::2])
        outside = (lo - z).clamp_min(0) + (z - hi).clamp_min(0)  # (N, 2) distance per axis
        return self.fn(z) + 0.5 * (outside / WALL_WIDTH).square().sum(dim=1)

    @property
    def area(self) -> float:
        return (self.box[1] - self.box[0]) * (self.box[3] - self.box[2])


ENERGIES: dict[str, Energy] = {
    "U1": Energy("U1", u1),
    "U2": Energy("U2", u2),
    "U3": Energy("U3", u3),
    "U4": Energy("U4", u4),
}
"""The four test energies of Rezende & Mohamed (2015), each on the box [-4, 4]^2."""


def get_energy(energy: str | Energy | Callable[[Tensor], Tensor], box: Box | None = None) -> Energy:
    """Resolve a name, an :class:`Energy` or a user's function U into a checked Energy.

    A user function must map a (N, 2) tensor to (N,) finite values (it is probed on a grid
    over the box); it should be differentiable with torch for reverse-KL fitting.

    Args:
        energy: a key of :data:`ENERGIES`, an Energy, or a callable U(z).
        box: the box (z1 min, z1 max, z2 min, z2 max); the energy's own (or [-4, 4]^2) if None.

    Returns:
        The energy with its box.

    Example:
        >>> get_energy(lambda z: 0.5 * z.square().sum(1), box=(-6, 6, -6, 6)).box
        (-6.0, 6.0, -6.0, 6.0)
    """
    if isinstance(energy, str):
        energy = lookup(ENERGIES, energy, "energy (or pass a function U(z) from Python)")
    elif not isinstance(energy, Energy):
        if not callable(energy):
            raise FlowmatchError(
                f"energy must be a name ({', '.join(ENERGIES)}) or a function U(z) mapping "
                f"(N, 2) to (N,), got {type(energy).__name__}"
            )
        energy = Energy(getattr(energy, "__name__", "custom"), energy)
    if box is not None:
        energy = Energy(energy.name, energy.fn, _check_box(box))
    _check_box(energy.box)
    _probe(energy)
    return energy


def _check_box(box: Box) -> Box:
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise FlowmatchError(
            f"box must be 4 numbers (z1 min, z1 max, z2 min, z2 max), got {box!r}"
        ) from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise FlowmatchError(
            f"box must be 4 finite numbers (z1 min, z1 max, z2 min, z2 max), got {box!r}"
        )
    if not (values[0] < values[1] and values[2] < values[3]):
        raise FlowmatchError(f"box must have min < max on both axes, got {values}")
    return values  # type: ignore[return-value]


def _probe(energy: Energy) -> None:
    """Evaluate U on a small grid over the box and check the shape and finiteness."""
    b = energy.box
    g = torch.stack(
        torch.meshgrid(torch.linspace(b[0], b[1], 7), torch.linspace(b[2], b[3], 7), indexing="ij"),
        dim=-1,
    ).reshape(-1, 2)
    try:
        with torch.no_grad():
            u = energy(g)
    except Exception as exc:  # a user's function: report whatever it raised, in one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FlowmatchError(f"energy {energy.name!r} failed on a (49, 2) batch: {first}") from None
    if not isinstance(u, Tensor) or tuple(u.shape) != (g.shape[0],):
        shape = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
        raise FlowmatchError(
            f"energy {energy.name!r} must map (N, 2) points to (N,) values, got {shape} for N = 49"
        )
    if not bool(torch.isfinite(u).all()):
        raise FlowmatchError(
            f"energy {energy.name!r} is not finite everywhere on its box {energy.box}; "
            "U must be finite where the target has mass"
        )
