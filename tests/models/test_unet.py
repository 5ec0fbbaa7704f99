"""The U-Net velocity: shapes, time and class dependence, zero start, bad shapes."""

import pytest
import torch

from flowmatch import FlowModel
from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig, UNetVelocity, build_model


@pytest.mark.parametrize(("shape", "levels"), [((1, 8, 8), 2), ((1, 28, 28), 2), ((3, 8, 12), 1)])
def test_shapes_and_scalar_time(shape, levels):
    v = UNetVelocity(shape, channels=8, levels=levels, num_classes=10)
    x = torch.randn(3, *shape)
    c = torch.tensor([1, 2, 3])
    out = v(x, torch.full((3,), 0.4), c)
    assert out.shape == (3, *shape)
    torch.testing.assert_close(v(x, 0.4, c), out)


def perturbed(v):
    """Move the zero-initialized output layers so the field is not identically 0."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in v.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return v


def test_starts_at_zero_and_depends_on_time_and_class():
    v = UNetVelocity((1, 8, 8), channels=8, levels=2, num_classes=10)
    x = torch.randn(2, 1, 8, 8)
    c = torch.tensor([0, 0])
    assert torch.equal(v(x, 0.3, c), torch.zeros_like(x))  # zero output layer: v = 0 at init
    v = perturbed(v)
    assert not torch.allclose(v(x, 0.1, c), v(x, 0.9, c))
    assert not torch.allclose(v(x, 0.5, c), v(x, 0.5, torch.tensor([7, 7])))
    assert not torch.allclose(v(x, 0.5, c), v(x, 0.5, None))  # the null condition


def test_samples_are_independent_in_the_batch():
    v = perturbed(UNetVelocity((1, 8, 8), channels=8, levels=1, num_classes=3))
    x, c = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    full = v(x, 0.5, c)
    torch.testing.assert_close(v(x[2:3], 0.5, c[2:3]), full[2:3])  # GroupNorm, no BatchNorm


def test_image_flow_model_standardizes_per_image_shape():
    v = UNetVelocity((1, 8, 8), channels=8, levels=1)
    flow = FlowModel(v, torch.full((64,), 0.3), torch.full((64,), 2.0))
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(flow.standardize(x), (x - 0.3) / 2.0)
    torch.testing.assert_close(flow.unstandardize(flow.standardize(x)), x)
    assert flow.sample(2, solver="euler", steps=2, seed=0).shape == (2, 1, 8, 8)


def test_bad_shapes_are_rejected():
    with pytest.raises(FlowmatchError, match="divisible by 4"):
        build_model(ModelConfig(name="unet", levels=2), (1, 6, 6))
    with pytest.raises(FlowmatchError, match="images"):
        build_model(ModelConfig(name="unet"), (16,))
    with pytest.raises(FlowmatchError, match="use the unet model"):
        build_model(ModelConfig(name="mlp"), (1, 8, 8))
