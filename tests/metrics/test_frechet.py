"""Fréchet distance against closed forms; the reference classifier learns and is cached."""

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.metrics import frechet_distance, gaussian_frechet
from flowmatch.metrics.classifier import classify, fit_classifier


def test_one_dimensional_closed_form():
    # d^2 = (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2) and N(m2, s2^2)
    assert gaussian_frechet([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)


def test_commuting_covariances_closed_form():
    m1, m2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    d1, d2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([4.0, 1.0, 1.0])
    expected = float((m1 - m2).square().sum() + (d1.sqrt() - d2.sqrt()).square().sum())
    assert gaussian_frechet(m1, torch.diag(d1), m2, torch.diag(d2)) == pytest.approx(expected)


def test_sample_estimate_matches_its_moments():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 0.7]], dtype=torch.float64
    )
    b = torch.randn(400, 3, generator=g, dtype=torch.float64) * 2 + 1
    expected = gaussian_frechet(a.mean(0), a.T.cov(), b.mean(0), b.T.cov())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    # a shift moves only the mean term: d^2(a, a + s) = |s|^2
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), rel=1e-6)


def test_bad_features_are_rejected():
    with pytest.raises(FlowmatchError, match="N >= 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(FlowmatchError, match="same feature map"):
        frechet_distance(torch.randn(5, 3), torch.randn(5, 4))


def test_classifier_learns_a_separable_task_deterministically():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 4, 4, generator=g) * 0.2
    y = torch.arange(64) % 2
    x[y == 1, :, :, :2] += 0.8  # class 1: bright left half
    kw = {"epochs": 25, "batch_size": 32, "lr": 1e-2, "width": 8, "feature_dim": 8, "seed": 1}
    a, b = fit_classifier(x, y, 2, **kw), fit_classifier(x, y, 2, **kw)
    pred, feats = classify(a, x)
    assert float((pred == y).float().mean()) == 1.0 and feats.shape == (64, 8)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
