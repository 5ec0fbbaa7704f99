"""Training-time samplers: the named distributions and their mixture with U[0, 1]."""

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.training import TrainConfig
from flowmatch.training.schedules import sample_time


def _draw(name, n, share=0.0, mean=0.0, seed=0):
    return sample_time(name, n, torch.Generator().manual_seed(seed), mean, 1.0, share)


def test_no_uniform_share_keeps_the_named_stream():
    a = _draw("logit-normal", 1000, share=0.0, mean=1.0)
    b = torch.sigmoid(1.0 + torch.randn(1000, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("share", [0.2, 0.5, 1.0])
def test_uniform_share_mixes_the_cdf(share):
    # logit-normal with mean 3 puts almost no mass below t = 0.5 (P = Phi(-3) = 0.00135), so
    # the share of times below 0.5 is (1 - s) 0.00135 + s / 2
    n = 200_000
    t = _draw("logit-normal", n, share=share, mean=3.0)
    assert t.min() >= 0 and t.max() <= 1
    expected = (1 - share) * 0.00135 + share / 2
    sd = (expected * (1 - expected) / n) ** 0.5
    assert abs((t < 0.5).float().mean().item() - expected) < 5 * sd


def test_bad_uniform_share_is_rejected():
    with pytest.raises(FlowmatchError, match="--time-uniform-share"):
        TrainConfig(time_uniform_share=1.5).validate()
