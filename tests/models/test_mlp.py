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


def test_fourier_features_are_a_fixed_map_saved_with_the_weights():
    from flowmatch.models.embeddings import FourierFeatures

    f = FourierFeatures(dim=2, features=8, scale=5.0)
    x = torch.randn(6, 2)
    y = f(x)
    assert y.shape == (6, 2 + 16)
    torch.testing.assert_close(y[:, :2], x)  # x itself is kept
    torch.testing.assert_close(y[:, 2:10] ** 2 + y[:, 10:] ** 2, torch.ones(6, 8))
    # two builds draw the same frequencies, with the requested spread
    torch.testing.assert_close(FourierFeatures(2, 8, 5.0).freqs, f.freqs)
    big = FourierFeatures(2, 4096, 5.0).freqs
    assert abs(big.std().item() - 5.0) < 0.2


def test_mlp_with_input_features_round_trips_its_state():
    cfg = ModelConfig(width=16, depth=2, input_features=8, input_scale=3.0)
    v = build_model(cfg, (2,))
    assert "input_embed.freqs" in v.state_dict()
    w = build_model(cfg, (2,))
    w.load_state_dict(v.state_dict())
    x = torch.randn(5, 2)
    torch.testing.assert_close(w(x, 0.4), v(x, 0.4))
    # without features the weights are what they always were
    assert "input_embed.freqs" not in build_model(ModelConfig(width=16, depth=2), (2,)).state_dict()
