"""Couplings: minibatch OT minimizes the batch cost (brute force), class-OT stays in classes."""

import itertools

import pytest
import torch

from flowmatch.couplings import (
    COUPLINGS,
    ClassConditionalOT,
    ExactOT,
    SinkhornOT,
    batch_cost,
    get_coupling,
    pair_in_blocks,
)
from flowmatch.errors import FlowmatchError


def brute_force_cost(x0, x1):
    """min over permutations s of (1/B) sum_j ||x0_s(j) - x1_j||^2."""
    b = x0.shape[0]
    return min(batch_cost(x0[list(p)], x1) for p in itertools.permutations(range(b)))


def rows(x):
    return sorted(map(tuple, x.tolist()))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("b", [2, 4, 6])
def test_exact_ot_pairs_minimize_the_batch_cost(seed, b):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(b, 3, generator=g, dtype=torch.float64)
    x1 = torch.randn(b, 3, generator=g, dtype=torch.float64) * 2 + 1
    p0, p1 = ExactOT().pair(x0, x1)
    assert p1 is x1  # the data keep their order
    assert rows(p0) == rows(x0)  # a permutation: every source point used exactly once
    assert batch_cost(p0, p1) == pytest.approx(brute_force_cost(x0, x1), rel=1e-12, abs=1e-12)
    assert batch_cost(p0, p1) <= batch_cost(x0, x1) + 1e-12


def test_exact_ot_on_image_shaped_batches():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(5, 1, 2, 2, generator=g), torch.randn(5, 1, 2, 2, generator=g)
    p0, _ = ExactOT().pair(x0, x1)
    assert p0.shape == x0.shape
    assert batch_cost(p0, x1) == pytest.approx(brute_force_cost(x0, x1), rel=1e-6)


def test_exact_ot_with_more_sources_than_data_draws_from_the_plan():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(8, 2, generator=g), torch.randn(3, 2, generator=g)
    p0, p1 = ExactOT().pair(x0, x1, generator=torch.Generator().manual_seed(1))
    assert p0.shape == (3, 2) and p1 is x1
    plan = ExactOT().plan(x0, x1)
    for j in range(3):  # each partner has mass in its data point's column
        i = next(k for k in range(8) if torch.equal(x0[k], p0[j]))
        assert plan[i, j] > 0


def test_sinkhorn_lies_between_exact_and_independent_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(64, 2, generator=g, dtype=torch.float64) * 3
    exact = batch_cost(*ExactOT().pair(x0, x1))
    a = SinkhornOT(reg=0.01).pair(x0, x1, generator=torch.Generator().manual_seed(5))
    b = SinkhornOT(reg=0.01).pair(x0, x1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0])
    cost = batch_cost(*a)
    assert exact <= cost < 0.5 * batch_cost(x0, x1)
    plan = SinkhornOT(reg=0.05).plan(x0, x1)  # a coupling: uniform marginals
    assert torch.allclose(plan.sum(0), torch.full((64,), 1 / 64, dtype=plan.dtype), atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_class_ot_never_pairs_across_classes_and_is_optimal_within(seed):
    g = torch.Generator().manual_seed(seed)
    b = 7
    x0 = torch.randn(b, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(b, 2, generator=g, dtype=torch.float64) + 3
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 1])
    p0, p1 = ClassConditionalOT().pair(x0, x1, labels)
    assert p1 is x1
    total = 0.0
    for c in labels.unique():
        at = labels == c
        assert rows(p0[at]) == rows(x0[at])  # the source points of class c stay in class c
        best = brute_force_cost(x0[at], x1[at])
        assert batch_cost(p0[at], x1[at]) == pytest.approx(best, rel=1e-12, abs=1e-12)
        total += best * int(at.sum())
    assert batch_cost(p0, p1) == pytest.approx(total / b, rel=1e-12)


def test_independent_coupling_keeps_the_draws():
    x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
    p0, p1 = COUPLINGS["independent"].pair(x0, x1)
    assert p0 is x0 and p1 is x1


def test_bad_inputs_are_one_line_errors():
    x = torch.randn(4, 2)
    cases = [
        (lambda: get_coupling("bogus"), "unknown coupling"),
        (lambda: ExactOT().pair(x, torch.randn(4, 3)), "features"),
        (lambda: ClassConditionalOT().pair(x, x), "needs the labels"),
        (lambda: ClassConditionalOT().pair(x, x, torch.rand(4)), "integer class labels"),
        (lambda: ClassConditionalOT().pair(x, x, torch.zeros(3, dtype=torch.long)), "one row"),
        (lambda: COUPLINGS["independent"].pair(x, torch.randn(3, 2)), "one to one"),
        (lambda: ClassConditionalOT().pair(x, torch.randn(3, 2), torch.zeros(3)), "one to one"),
        (lambda: SinkhornOT(reg=0.0), "must be > 0"),
    ]
    for fn, fragment in cases:
        with pytest.raises(FlowmatchError, match=fragment) as info:
            fn()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("b", [40, 200])
def test_exact_ot_assignment_and_network_simplex_agree(b, monkeypatch):
    """Both exact solvers (SciPy assignment, POT simplex) reach the same minimal cost."""
    import flowmatch.couplings.ot as ot_module

    g = torch.Generator().manual_seed(b)
    x0 = torch.randn(b, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(b, 2, generator=g, dtype=torch.float64) * 2 + 1
    optimum = float((ExactOT().plan(x0, x1) * torch.cdist(x0, x1).square()).sum())
    for crossover in (b + 1, b):  # b + 1: assignment solver; b: network simplex
        monkeypatch.setattr(ot_module, "ASSIGNMENT_MAX_ROWS", crossover)
        p0, _ = ExactOT().pair(x0, x1)
        assert rows(p0) == rows(x0)
        assert batch_cost(p0, x1) == pytest.approx(optimum, rel=1e-12)


@pytest.mark.parametrize("block", [0, 2, 4, 6])
def test_blocks_are_coupled_optimally_and_separately(block):
    g = torch.Generator().manual_seed(block)
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(6, 2, generator=g, dtype=torch.float64) + 2
    p0, p1 = pair_in_blocks(ExactOT(), x0, x1, block=block)
    assert p1 is x1
    size = block if 0 < block < 6 else 6
    for s in range(0, 6, size):  # every block is an optimal permutation of its own rows
        part = slice(s, s + size)
        assert rows(p0[part]) == rows(x0[part])
        best = brute_force_cost(x0[part], x1[part])
        assert batch_cost(p0[part], x1[part]) == pytest.approx(best, rel=1e-12, abs=1e-12)
