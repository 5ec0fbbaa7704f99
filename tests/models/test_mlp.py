"""Velocity networks: shapes, time handling and the condition guard."""

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.models import ACTIVATIONS, ModelConfig, build_model


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_mlp_shapes_and_scalar_time(activation):
    v = build_model(ModelConfig(width=16, depth=2, activation=activation), (3,))
    x = torch.randn(7, 3)
    out = v(x, torch.full((7,), 0.3))
    assert out.shape == (7, 3)
    torch.testing.assert_close(v(x, 0.3), out)  # a scalar time is broadcast
    torch.testing.assert_close(v(x, torch.tensor(0.3)), out)


def test_mlp_depends_on_time():
    v = build_model(ModelConfig(width=16, depth=2), (2,))
    x = torch.randn(5, 2)
    assert not torch.allclose(v(x, 0.1), v(x, 0.9))


def test_unconditional_model_rejects_a_condition():
    v = build_model(ModelConfig(width=8, depth=1), (2,))
    with pytest.raises(ValueError, match="condition"):
        v(torch.randn(3, 2), 0.5, torch.zeros(3, dtype=torch.long))


def test_bad_model_options_are_rejected():
    with pytest.raises(FlowmatchError, match="mlp"):
        build_model(ModelConfig(name="transformer"), (2,))
    with pytest.raises(FlowmatchError, match="vectors"):
        build_model(ModelConfig(), (1, 8, 8))
