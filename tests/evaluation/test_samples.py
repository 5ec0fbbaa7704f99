"""Merging the evaluation rows of independent draws."""

import math
import statistics

import pytest

from flowmatch.errors import FlowmatchError
from flowmatch.evaluation.samples import EvalRow, mean_over_draws


def _rows(w2s, mmd=0.01):
    return [EvalRow("euler", 4, 4, w2s[0], mmd, 0.1), EvalRow("dopri5", None, 62, w2s[1], mmd, 0.2)]


def test_w2_is_the_mean_of_the_draws_and_the_rest_the_first_draws():
    draws = [_rows([0.2, 0.1]), _rows([0.4, 0.3], mmd=float("nan")), _rows([0.3, 0.2], mmd=9.0)]
    merged = mean_over_draws(draws)
    for i, row in enumerate(merged):
        values = [d[i].w2 for d in draws]
        assert row.w2 == pytest.approx(statistics.fmean(values))
        assert row.w2_sd == pytest.approx(statistics.stdev(values))
        assert row.w2_draws == tuple(values)
        assert (row.solver, row.steps, row.nfe, row.mmd, row.seconds) == (
            draws[0][i].solver, draws[0][i].steps, draws[0][i].nfe, 0.01, draws[0][i].seconds,
        )  # fmt: skip


def test_one_draw_is_returned_unchanged_and_written_as_before():
    rows = _rows([0.2, 0.1])
    assert mean_over_draws([rows]) == rows
    assert set(rows[0].to_dict()) == {"solver", "steps", "nfe", "w2", "mmd", "seconds"}
    merged = mean_over_draws([rows, _rows([0.4, 0.3])])[0].to_dict()
    assert merged["w2_draws"] == [0.2, 0.4] and merged["w2_sd"] > 0


def test_a_diverged_draw_makes_the_mean_infinite():
    row = mean_over_draws([_rows([0.2, 0.1]), _rows([math.inf, 0.1])])[0]
    assert row.w2 == math.inf and row.w2_sd == math.inf


def test_draws_of_different_settings_are_refused():
    with pytest.raises(FlowmatchError, match="different settings"):
        mean_over_draws([_rows([0.2, 0.1]), _rows([0.2, 0.1])[::-1]])
    with pytest.raises(FlowmatchError, match="at least one"):
        mean_over_draws([])


def test_the_ratio_of_means_is_exact_for_proportional_draws_and_its_error_shrinks_with_more():
    import random

    from flowmatch.evaluation.samples import ratio_of_means

    floors = [0.10, 0.13, 0.11, 0.16]
    ratio, error = ratio_of_means([1.2 * f for f in floors], floors)
    assert ratio == pytest.approx(1.2) and error == pytest.approx(0.0, abs=1e-12)
    rng = random.Random(0)
    pairs = [(rng.gauss(0.13, 0.02), rng.gauss(0.12, 0.02)) for _ in range(400)]
    errors = [ratio_of_means(*zip(*pairs[:k], strict=True))[1] for k in (10, 40, 400)]
    assert errors[0] > errors[1] > errors[2]  # ~ 1 / sqrt(K)
    assert errors[2] * math.sqrt(400) == pytest.approx(errors[1] * math.sqrt(40), rel=0.35)
    assert math.isnan(ratio_of_means([0.2], [0.1])[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("euler", "'euler' needs its steps"),
        ("euler:0", "whole number >= 1"),
        ("dopri5:4", "adaptive and takes no steps"),
        ("rk5:4", "unknown solver in --rows 'rk5'"),
        ("euler:4,euler:4", "names a setting twice"),
    ],
)
def test_malformed_solver_settings_are_refused_in_one_line(text, message):
    from flowmatch.evaluation.samples import parse_settings

    with pytest.raises(FlowmatchError, match=message):
        parse_settings(text)
