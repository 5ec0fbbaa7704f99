"""Bits per dimension and NLL summaries: closed forms and the dequantization bound."""

from __future__ import annotations

import math

import pytest
import torch

from flowmatch.data import Quantization
from flowmatch.data.image_files import PIXEL_GRID
from flowmatch.errors import FlowmatchError
from flowmatch.likelihood import bits_per_dim, dequantized_log_prob, summarize_nll


def test_a_uniform_density_over_the_levels_costs_log2_levels_bits():
    d = 64
    log_p = torch.tensor(-d * math.log(17.0))  # U[0, 17)^64
    assert bits_per_dim(log_p, d).item() == pytest.approx(math.log2(17.0))
    # the same set on [0, 1) with bins of 1/17: density 1 per unit volume, same code length
    assert bits_per_dim(torch.tensor(0.0), d, bin_width=1 / 17).item() == pytest.approx(
        math.log2(17.0)
    )


def test_dequantized_nll_of_a_piecewise_constant_density_is_the_discrete_nll():
    # P over 4 levels; p(y) = P(floor(y)) on [0, 4) has E_u[-log p(x + u)] = -log P(x)
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    q = Quantization(levels=4)
    x = torch.multinomial(probs, 5000, replacement=True, generator=torch.Generator()).double()
    y = q.dequantize(x[:, None], torch.Generator().manual_seed(0))[:, 0]
    log_p = probs[y.floor().long()].log()
    s = summarize_nll(log_p, dim=1)
    entropy_bits = -(probs * probs.log2()).sum().item()
    assert s.bits_per_dim == pytest.approx(entropy_bits, abs=4 * s.bits_per_dim_stderr)


def test_summary_statistics():
    log_p = torch.tensor([-1.0, -2.0, -3.0, -6.0])
    se = torch.tensor([0.3, 0.4, 0.0, 0.0])
    s = summarize_nll(log_p, dim=2, stderr=se)
    assert s.n == 4 and s.nll == pytest.approx(3.0)
    assert s.stderr == pytest.approx(log_p.std().item() / 2)
    assert s.estimator_stderr == pytest.approx(0.5 / 4)
    assert s.bits_per_dim == pytest.approx(3.0 / (2 * math.log(2)))
    assert s.bits_per_dim_stderr == pytest.approx(s.stderr / (2 * math.log(2)))
    assert summarize_nll(log_p, dim=2).estimator_stderr is None


def test_quantization_grid_checks():
    q = Quantization(levels=17)
    assert q.on_grid(torch.tensor([[0.0, 16.0]])) and not q.on_grid(torch.tensor([[0.5]]))
    assert not q.on_grid(torch.tensor([[17.0]])) and q.high == 17.0


def test_float32_pixels_are_on_the_8_bit_grid_and_dequantized_ones_are_not():
    pixels = torch.arange(256, dtype=torch.float32) / 255  # as an image file stores them
    assert PIXEL_GRID.on_grid(pixels)
    assert not PIXEL_GRID.on_grid(PIXEL_GRID.dequantize(pixels, torch.Generator().manual_seed(0)))
    with pytest.raises(FlowmatchError, match="levels >= 2"):
        Quantization(levels=1)
    with pytest.raises(FlowmatchError, match="bin_width > 0"):
        bits_per_dim(torch.tensor(0.0), 2, bin_width=0.0)


def test_many_dequantizations_converge_to_the_discrete_log_mass():
    # p(y) = N(0.3, 0.8^2) per feature: the mass of the bin [x, x + 1) is Phi differences
    normal = torch.distributions.Normal(torch.tensor(0.3, dtype=torch.float64), 0.8)
    x = torch.tensor([[-1.0, 0.0], [1.0, 2.0]], dtype=torch.float64)  # (2, 2) grid points
    exact = (normal.cdf(x + 1) - normal.cdf(x)).log().sum(1)  # (2,)
    log_prob = lambda y: normal.log_prob(y).sum(1)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    many = dequantized_log_prob(log_prob, x, samples=20_000, generator=g)
    torch.testing.assert_close(many, exact, rtol=0, atol=0.01)
    # one draw is the plain dequantization; the mean density of K draws is never below the
    # mean of their log-densities (Jensen), so the bound only tightens
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    one = dequantized_log_prob(log_prob, x, samples=1, generator=g1)
    torch.testing.assert_close(one, log_prob(x + torch.rand(x.shape, generator=g2, dtype=x.dtype)))
    g = torch.Generator().manual_seed(2)
    draws = torch.stack([dequantized_log_prob(log_prob, x, generator=g) for _ in range(8)])
    g = torch.Generator().manual_seed(2)
    assert bool((dequantized_log_prob(log_prob, x, samples=8, generator=g) >= draws.mean(0)).all())
    with pytest.raises(FlowmatchError, match="dequantizations must be an integer >= 1"):
        dequantized_log_prob(log_prob, x, samples=0)
