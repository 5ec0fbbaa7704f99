"""Image evaluation: the held-out reference split and the real-data reference rows."""

import math
from types import SimpleNamespace

import pytest
import torch

from flowmatch.evaluation.images import real_data_quality, reference_split
from flowmatch.metrics.classifier import ImageClassifier, classify
from flowmatch.metrics.frechet import frechet_distance


def labelled_images(n_train: int, n_test: int) -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    return SimpleNamespace(
        train_data=torch.rand(n_train, 1, 4, 4, generator=g),
        train_cond=torch.arange(n_train) % 3,
        test_data=torch.rand(n_test, 1, 4, 4, generator=g),
        test_cond=torch.arange(n_test) % 3,
    )


def test_reference_split_sets_aside_n_disjoint_images_when_there_are_2n():
    ds = labelled_images(10, 50)
    a, r = reference_split(ds, 20)
    assert a.shape == (20,) and r.shape == (30,)
    assert sorted(torch.cat([a, r]).tolist()) == list(range(50))  # disjoint, covering
    a2, r2 = reference_split(ds, 20)
    assert torch.equal(a, a2) and torch.equal(r, r2)  # every row measures against the same R
    a, r = reference_split(ds, 26)  # fewer than 2n: the whole split is the reference
    assert a is None and torch.equal(r, torch.arange(50))


def test_real_rows_score_held_out_images_against_the_rest_only():
    torch.manual_seed(0)
    net = ImageClassifier((1, 4, 4), 3, width=2, feature_dim=4).eval()
    ds = labelled_images(40, 60)
    train, held = real_data_quality(ds, net, 20, seed=1)
    a, r = reference_split(ds, 20)
    _, fa = classify(net, ds.test_data[a])
    _, fr = classify(net, ds.test_data[r])
    assert held.n == 20 and held.frechet == pytest.approx(frechet_distance(fa, fr), rel=1e-12)
    assert train.n == 20 and train.label == "real train" and math.isfinite(train.frechet)
    pred, _ = classify(net, ds.test_data[a])
    assert held.accuracy == pytest.approx(float((pred == ds.test_cond[a]).float().mean()))
    _, held = real_data_quality(ds, net, 40)  # 60 < 2 * 40: accuracy on all, no distance
    assert held.n == 60 and math.isnan(held.frechet)
