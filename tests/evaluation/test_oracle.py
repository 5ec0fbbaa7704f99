"""The oracle report: error per t-bin, the FM loss gap and memorization, on known fields."""

import pytest
import torch

from flowmatch.evaluation.oracle import (
    error_by_time,
    fm_loss_gap,
    memorization,
    nearest_distance,
    oracle_flow,
    oracle_report,
)
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import MLPVelocity, OptimalVelocity, VelocityModel


class Scaled(VelocityModel):
    """a * v* + b: a field whose distance to v* is known."""

    def __init__(self, oracle, a=1.0, b=0.0):
        super().__init__()
        self.oracle, self.a, self.b, self.shape = oracle, a, b, oracle.shape

    def velocity(self, xt, t, c):
        return self.a * self.oracle(xt, t) + self.b


@pytest.fixture(scope="module")
def points():
    g = torch.Generator().manual_seed(0)
    return torch.randn(200, 2, generator=g, dtype=torch.float64) * 0.5 + 1.0


def test_error_by_time_is_zero_for_v_star_and_one_for_zero(points):
    oracle = OptimalVelocity.empirical(points)
    held = torch.randn(100, 2, dtype=torch.float64)
    for bin_ in error_by_time(Scaled(oracle), oracle, held, bins=4):
        assert bin_.relative_error < 1e-12
    for bin_ in error_by_time(Scaled(oracle, a=0.0), oracle, held, bins=4):
        assert bin_.relative_error == pytest.approx(1.0)
    scaled = error_by_time(Scaled(oracle, a=1.5), oracle, held, bins=3)
    assert [round(b.t_lo, 3) for b in scaled] == [0.0, 0.333, 0.667]
    assert all(b.relative_error == pytest.approx(0.25) for b in scaled)  # |0.5 v*|^2 / |v*|^2


@pytest.mark.parametrize("b", [0.05, 0.3, 1.0])
def test_fm_loss_of_v_star_is_the_minimum_and_the_gap_is_the_distance(points, b):
    """L(v* + b) - L(v*) = b^2 in expectation; v*'s loss matches E tr Cov / D."""
    oracle = OptimalVelocity.empirical(points)
    z1 = points[torch.randint(200, (20000,), generator=torch.Generator().manual_seed(1))]
    r = fm_loss_gap(Scaled(oracle, b=b), oracle, z1, seed=2)
    assert r.network > r.oracle
    assert r.expected_gap == pytest.approx(b**2)
    assert r.gap == pytest.approx(b**2, abs=0.02)  # Monte Carlo of the cross term
    assert r.oracle == pytest.approx(r.floor, rel=0.05)


def test_nearest_distance_matches_brute_force():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(300, 3, generator=g), torch.randn(50, 3, generator=g)
    brute = ((x[:, None] - y[None]) ** 2).sum(2).sqrt().min(1).values
    torch.testing.assert_close(nearest_distance(x, y, chunk=7), brute.double())


def test_sampling_v_star_memorizes_and_held_out_points_do_not(points):
    flow = FlowModel(MLPVelocity(2, width=8, depth=1), torch.zeros(2), torch.ones(2))
    star = oracle_flow(flow, points)
    samples = star.sample(300, seed=0, solver="euler", steps=200)
    held = torch.randn(300, 2, dtype=torch.float64) * 0.5 + 1.0
    mem = memorization(samples, held.float(), points, held)
    assert mem.oracle_samples < 0.01 * mem.held_out
    assert mem.network_samples == pytest.approx(mem.held_out)


def test_report_of_a_conditional_network_uses_the_class_v_star(points):
    labels = (points[:, 0] > 1.0).long()
    net = MLPVelocity(2, width=8, depth=1, num_classes=2)
    flow = FlowModel(net, points.mean(0).float(), points.std(0).float())
    star = oracle_flow(flow, points, labels)
    assert star.velocity.condition.num_classes == 2
    x = star.sample(50, seed=0, cond=1, solver="euler", steps=50).double()
    assert (x[:, 0] > 1.0).all()  # class 1 lands on class-1 points only
    report = oracle_report(
        flow, points, points[:40], train_cond=labels, held_out_cond=labels[:40], bins=2,
        samples=20, steps=200,
    )  # fmt: skip
    assert len(report.bins) == 2 and report.loss.gap > 0
    assert report.memorization.oracle_samples < 1e-2
