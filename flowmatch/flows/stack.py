"""A discrete normalizing flow: a composition of invertible layers with summed log-dets."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flowmatch.data.sources import standard_normal_log_prob
from flowmatch.errors import FlowmatchError
from flowmatch.flows.affine import ElementwiseAffine
from flowmatch.flows.planar import PlanarActivation, PlanarLayer

__all__ = ["FlowStack", "planar_stack", "standard_normal_log_prob"]


class FlowStack(nn.Module):
    """x_K = f_K ∘ ... ∘ f_1(x_0), with log p_K(x_K) = log p_0(x_0) - Σ_k log|det ∂f_k/∂x_{k-1}|.

    The first layer acts on the noise x_0 ~ N(0, I), the last one produces the data end x_K.
    Every layer has ``forward(z) -> (x, ladj)`` and ``inverse(x) -> (z, ladj)``, each ladj
    being the log-absolute-determinant of the direction called, so the stack's log-dets are
    plain sums.

    Args:
        layers: the layers f_1, ..., f_K in order from noise to data, all of the same ``dim``.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> flow = planar_stack(2, layers=4)
        >>> x, log_q = flow.sample_and_log_prob(3)
        >>> bool(torch.allclose(flow.log_prob(x), log_q, atol=1e-5))
        True

    References:
        Rezende & Mohamed, "Variational Inference with Normalizing Flows" (ICML 2015), eq. 7.
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(layers) == 0:
            raise FlowmatchError("a flow stack needs at least one layer")
        dims = {int(layer.dim) for layer in layers}
        if len(dims) != 1:
            raise FlowmatchError(f"all layers of a stack must have the same dim, got {dims}")
        self.dim = dims.pop()
        self.layers = nn.ModuleList(layers)

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """x_K and Σ_k log|det ∂f_k/∂x_{k-1}| for x_0 = z: (B, D) -> ((B, D), (B,))."""
        ladj = z.new_zeros(z.shape[0])
        for layer in self.layers:
            z, step = layer(z)
            ladj = ladj + step
        return z, ladj

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x_0 and log|det ∂x_0/∂x_K| = -Σ_k log|det ∂f_k/∂x_{k-1}|: (B, D) -> ((B, D), (B,))."""
        ladj = x.new_zeros(x.shape[0])
        for layer in reversed(self.layers):
            x, step = layer.inverse(x)
            ladj = ladj + step
        return x, ladj

    def states(self, z: Tensor) -> Tensor:
        """The states x_0 = z, x_1, ..., x_K after each layer: (B, D) -> (K + 1, B, D)."""
        out = [z]
        for layer in self.layers:
            out.append(layer(out[-1])[0])
        return torch.stack(out)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p_K(x) = log N(f^{-1}(x)) + log|det ∂f^{-1}/∂x|: (B, D) -> (B,)."""
        z, ladj = self.inverse(x)
        return standard_normal_log_prob(z) + ladj

    def sample_and_log_prob(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """n draws x = f(z), z ~ N(0, I), with log q(x) = log N(z) - log|det ∂f/∂z|, from the
        forward pass alone (no inverse): ((n, D), (n,)). The draws are reparametrized, so
        gradients flow to the parameters (the reverse-KL objective needs this)."""
        p = next(self.parameters())
        z = torch.randn(n, self.dim, generator=generator, dtype=p.dtype).to(p.device)
        x, ladj = self(z)
        return x, standard_normal_log_prob(z) - ladj


def planar_stack(
    dim: int,
    layers: int,
    activation: str | PlanarActivation = "tanh",
    *,
    affine: bool = True,
) -> FlowStack:
    """K planar layers, preceded by an elementwise affine layer if ``affine``.

    With the affine layer first, the stack is Rezende & Mohamed's flow: a learnable diagonal
    Gaussian q_0 transformed by K planar layers.

    Args:
        dim: D, the number of features.
        layers: K >= 1, the number of planar layers.
        activation: the gate h of every planar layer (a key of ``PLANAR_ACTIVATIONS``).
        affine: put an :class:`ElementwiseAffine` layer at the noise end.

    Returns:
        The stack (randomly initialized from torch's global generator).
    """
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise FlowmatchError(f"a planar flow needs layers >= 1, got {layers!r}")
    stack: list[nn.Module] = [ElementwiseAffine(dim)] if affine else []
    stack += [PlanarLayer(dim, activation) for _ in range(layers)]
    return FlowStack(stack)
