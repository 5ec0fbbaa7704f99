"""The planar layer: log-det against autograd, exact inverse, the constraint, bad input."""

import pytest
import torch
from torch import nn

from flowmatch.errors import FlowmatchError
from flowmatch.flows import LeakyReLU, PlanarLayer, solve_increasing

F64 = torch.float64
ACTIVATIONS = ["tanh", "leaky_relu"]


def layer_with(c: float, w_norm: float, activation: str = "tanh", dim: int = 2, seed: int = 0):
    """A float64 layer with wᵀu = c and ||w|| = w_norm (so 1 + wᵀû = softplus(c))."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=g, dtype=F64)
    w = w / w.norm() * w_norm
    u = torch.randn(dim, generator=g, dtype=F64)
    u = u - (w @ u) / (w @ w) * w + c * w / (w @ w)  # set wᵀu = c exactly (up to rounding)
    b = float(torch.randn((), generator=g, dtype=F64))
    return PlanarLayer(dim, activation, u=u, w=w, b=b).double()


def random_layers(activation: str, n: int = 40, dim: int = 3):
    """Layers with wᵀu over ±30 and ||w|| over 1e-4 ... 1e4, from a fixed seed."""
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        c = float(60 * torch.rand((), generator=g) - 30)
        w_norm = float(10 ** (8 * torch.rand((), generator=g) - 4))
        yield layer_with(c, w_norm, activation, dim, seed=i)


def per_point_jacobians(fn, z):
    """(B, D, D) Jacobians of a batched map (B, D) -> (B, D) that acts row by row."""
    jac = torch.autograd.functional.jacobian(fn, z)  # (B, D, B, D)
    idx = torch.arange(z.shape[0])
    return jac[idx, :, idx, :]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("c", [3.0, 0.0, -3.0, -12.0])  # 1 + wᵀû from ~3 down to ~6e-6
def test_log_det_matches_slogdet_of_the_autograd_jacobian(activation, c):
    layer = layer_with(c, 1.3, activation, dim=3)
    z = 2 * torch.randn(16, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    _, ladj = layer(z)
    sign, logabs = torch.linalg.slogdet(per_point_jacobians(lambda v: layer(v)[0], z))
    assert (sign > 0).all()
    torch.testing.assert_close(ladj, logabs, rtol=1e-9, atol=1e-9)
    # and the inverse's log-det is the log-det of the inverse's own Jacobian
    x, _ = layer(z)
    _, ladj_inv = layer.inverse(x)
    sign, logabs = torch.linalg.slogdet(per_point_jacobians(lambda v: layer.inverse(v)[0], x))
    assert (sign > 0).all()
    torch.testing.assert_close(ladj_inv, logabs, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(ladj_inv, -ladj, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_inverse_of_forward_is_the_identity_for_random_parameters(activation):
    eps = torch.finfo(F64).eps
    z = 3 * torch.randn(512, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    for layer in random_layers(activation):
        with torch.no_grad():
            x, _ = layer(z)
            z_back, _ = layer.inverse(x)
            u_hat, one_plus_s = layer.constrained()
            slope = layer.activation.slope(z @ layer.w + layer.b, one_plus_s)  # (B,)
        # what is left is the rounding of x = z + û h(a) and of z = x - û h(a), amplified by
        # the conditioning of recovering a = wᵀz + b: ||w|| ||û|| / slope (the slope is
        # 1 + h'(a) wᵀû, small where the layer squeezes space)
        scale = 1 + x.abs().amax() + u_hat.abs().amax()
        tol = 1e3 * eps * scale * (1 + layer.w.norm() * u_hat.norm()) / slope
        assert ((z_back - z).abs().amax(dim=1) <= tol).all(), (layer.w.norm(), one_plus_s)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("one_plus_s", [1e-3, 1e-6, 1e-9])
def test_inverse_of_nearly_degenerate_layers(activation, one_plus_s):
    """wᵀû close to -1: the layer squeezes the band around a = 0 by 1 + wᵀû, so the round
    trip may lose up to rounding / (1 + wᵀû); the image of the inverse is exact to rounding."""
    eps = torch.finfo(F64).eps
    c = float(torch.log(torch.expm1(torch.tensor(one_plus_s, dtype=F64))))  # softplus(c) = 1+s
    for w_norm in (1e-3, 1.0, 1e3):
        layer = layer_with(c, w_norm, activation, dim=2, seed=4)
        torch.testing.assert_close(layer.one_plus_wu(), torch.tensor(one_plus_s, dtype=F64))
        z = torch.randn(1000, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
        z[:200] *= 1e-3 / w_norm  # many points right at the squeezed band
        with torch.no_grad():
            x, _ = layer(z)
            z_back, _ = layer.inverse(x)
            x_again, _ = layer(z_back)
            u_hat = layer.u_hat()
        scale = 1 + x.abs().amax() + u_hat.abs().amax()
        assert (x_again - x).abs().max() <= 1e3 * eps * scale
        assert (z_back - z).abs().max() <= 1e3 * eps * scale / one_plus_s


def test_inverse_gradients_are_the_implicit_function_theorem_ones():
    """gradcheck of z = f^{-1}(x) and its log-det against finite differences, in u, w, b, x."""
    layer = layer_with(-1.0, 0.8, "tanh", dim=2, seed=6)

    class Inverse(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            z, ladj = self.layer.inverse(x)
            return z, ladj

    model = Inverse()
    x = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(7))

    def fn(u, w, b, x):
        params = {"layer.u": u, "layer.w": w, "layer.b": b}
        return torch.func.functional_call(model, params, (x,))

    inputs = tuple(t.detach().clone().requires_grad_(True) for t in (layer.u, layer.w, layer.b, x))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_w_dot_u_hat_stays_above_minus_one(dtype):
    """Property over many random draws, including extreme wᵀu and ||w||."""
    g = torch.Generator().manual_seed(8)
    for i in range(500):
        dim = int(torch.randint(1, 6, (), generator=g))
        w = torch.randn(dim, generator=g, dtype=F64) * 10 ** (10 * torch.rand((), generator=g) - 5)
        u = torch.randn(dim, generator=g, dtype=F64) * 10 ** (8 * torch.rand((), generator=g) - 4)
        if i % 4 == 0:  # push wᵀu far negative, where m(wᵀu) -> -1
            u = u - (1e3 * torch.rand((), generator=g, dtype=F64)) * w / (w @ w)
        layer = PlanarLayer(dim, u=u.to(dtype), w=w.to(dtype), b=0.0).to(dtype)
        with torch.no_grad():
            one_plus_s = layer.one_plus_wu()
            assert one_plus_s > 0
            a = torch.linspace(-5, 5, 11, dtype=dtype)
            slope = layer.activation.slope(a, one_plus_s)  # 1 + h'(a) wᵀû
            assert (slope > 0).all() and torch.isfinite(slope.log()).all()
            # the vector û itself satisfies the constraint wherever float64 can show it
            if dtype == F64 and one_plus_s > 1e-12 * (1 + (w @ u).abs()):
                assert w @ layer.u_hat() > -1


def test_u_hat_satisfies_the_constraint_formula():
    layer = layer_with(-2.5, 0.7, seed=9)
    with torch.no_grad():
        w, u = layer.w, layer.u
        m = -1 + torch.nn.functional.softplus(w @ u)
        torch.testing.assert_close(w @ layer.u_hat(), m)
        torch.testing.assert_close(layer.u_hat(), u + (m - w @ u) * w / (w @ w))


def test_leaky_relu_layer_is_the_formula():
    layer = PlanarLayer(2, LeakyReLU(0.2)).double()
    z = torch.randn(50, 2, dtype=F64)
    a = z @ layer.w + layer.b
    h = torch.where(a >= 0, a, 0.2 * a)
    torch.testing.assert_close(layer(z)[0], z + h[:, None] * layer.u_hat())


def test_the_root_finder_reaches_float_precision_even_at_a_flat_root():
    y = torch.linspace(-8, 8, 101, dtype=F64)
    for g in (lambda a: (a**3, 3 * a**2), lambda a: (a + torch.sinh(a), 1 + torch.cosh(a))):
        a = solve_increasing(g, y, torch.full_like(y, -10.0), torch.full_like(y, 10.0))
        r = g(a)[0] - y
        assert (r.abs() <= 8 * torch.finfo(F64).eps * (1 + y.abs())).all()
    # a^3 = 0 has g' = 0 at the root: bisection still brings it to ~0
    a = solve_increasing(lambda a: (a**3, 3 * a**2), torch.zeros(1, dtype=F64),
                         -torch.ones(1, dtype=F64), torch.ones(1, dtype=F64))  # fmt: skip
    assert a.abs().item() < 1e-5


# -- bad parameters and inputs --------------------------------------------------------------
@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: PlanarLayer(0), "dim >= 1"),
        (lambda: PlanarLayer(2, "relu"), "unknown planar activation 'relu'"),
        (lambda: LeakyReLU(0.0), "negative slope must be in (0, 1]"),
        (lambda: LeakyReLU(1.5), "negative slope must be in (0, 1]"),
        (lambda: PlanarLayer(2, w=torch.zeros(2)), "w must be nonzero"),
        (lambda: PlanarLayer(2, u=torch.zeros(3)), "u must have shape (2,)"),
        (lambda: PlanarLayer(2, b=torch.zeros(2)), "b must have shape ()"),
        (lambda: PlanarLayer(2, w=torch.tensor([1.0, float("nan")])), "NaN or Inf"),
    ],
)
def test_bad_parameters_are_rejected(make, fragment):
    with pytest.raises(FlowmatchError) as err:
        make()
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [torch.zeros(4), torch.zeros(4, 3), torch.zeros(2, 2, 1)])
def test_inputs_of_the_wrong_shape_are_rejected(bad):
    layer = PlanarLayer(2)
    for call in (layer, layer.inverse):
        with pytest.raises(FlowmatchError, match=r"must be a tensor of shape \(B, 2\)"):
            call(bad)
