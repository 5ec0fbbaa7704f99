"""Conditioning: embeddings with a learned null, guidance algebra, dropout rate, bad conditions."""

import math

import pytest
import torch

from flowmatch import FlowModel
from flowmatch.errors import FlowmatchError
from flowmatch.models import (
    ClassEmbedding,
    MLPVelocity,
    ModelConfig,
    VectorEmbedding,
    VelocityModel,
    build_model,
    condition_dropout,
    guided_velocity,
)


def class_mlp(k=3, dim=2):
    torch.manual_seed(0)
    return MLPVelocity(dim, width=16, depth=2, num_classes=k, cond_embed_dim=8).double()


def vector_mlp(d=4, dim=2):
    torch.manual_seed(0)
    return MLPVelocity(dim, width=16, depth=2, cond_dim=d, cond_embed_dim=8).double()


def test_unconditional_mlp_keeps_its_weights():
    v = MLPVelocity(2, width=16, depth=2)
    assert v.condition is None
    assert list(v.state_dict()) == [f"net.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]


def test_class_embedding_null_row_and_drop():
    emb = ClassEmbedding(3, 5)
    c = torch.tensor([0, 2, 1])
    e = emb(c, 3)
    assert torch.equal(e, emb.table.weight[c])
    torch.testing.assert_close(emb(None, 3), emb.table.weight[3].expand(3, 5))
    drop = torch.tensor([False, True, False])
    mixed = emb(c, 3, drop)
    assert torch.equal(mixed[1], emb.table.weight[3]) and torch.equal(mixed[0], e[0])


def test_vector_embedding_null_and_drop():
    emb = VectorEmbedding(4, 6)
    c = torch.randn(2, 4)
    out = emb(c, 2, torch.tensor([True, False]))
    assert torch.equal(out[0], emb.null_embedding) and torch.equal(out[1], emb(c, 2)[1])


@pytest.mark.parametrize("make", [class_mlp, vector_mlp])
def test_condition_changes_the_field_and_none_is_the_null(make):
    v = make()
    x, t = torch.randn(6, 2, dtype=torch.float64), torch.rand(6, dtype=torch.float64)
    cond = torch.tensor([0, 1, 2, 0, 1, 2]) if v.condition.kind == "class" else torch.randn(6, 4)
    v_c, v_u = v(x, t, cond), v(x, t, None)
    assert not torch.allclose(v_c, v_u)
    # None is exactly "every sample dropped"
    torch.testing.assert_close(v_u, v(x, t, cond, drop=torch.ones(6, dtype=torch.bool)))


@pytest.mark.parametrize("make", [class_mlp, vector_mlp])
def test_guidance_interpolates_between_unconditional_and_conditional(make):
    v = make()
    x, t = torch.randn(5, 2, dtype=torch.float64), torch.rand(5, dtype=torch.float64)
    cond = torch.tensor([0, 1, 2, 1, 0]) if v.condition.kind == "class" else torch.randn(5, 4)
    v_c, v_u = v(x, t, cond), v(x, t, None)
    torch.testing.assert_close(guided_velocity(v, x, t, cond, 1.0), v_c)  # w = 1: conditional
    torch.testing.assert_close(guided_velocity(v, x, t, cond, 0.0), v_u)  # w = 0: unconditional
    # the batched 2B evaluation gives v_u + w (v_c - v_u) for any w, including near 1 and 0
    for w in (2.5, -0.5, 1.0 + 1e-9, 1e-9):
        torch.testing.assert_close(guided_velocity(v, x, t, cond, w), v_u + w * (v_c - v_u))


def test_flow_sampling_with_guidance_one_equals_plain_conditional():
    flow = FlowModel(class_mlp().float(), torch.zeros(2), torch.ones(2))
    a = flow.sample(8, cond=1, solver="rk4", steps=4, seed=3)
    b = flow.sample(8, cond=torch.full((8,), 1), guidance=1.0, solver="rk4", steps=4, seed=3)
    c = flow.sample(8, cond=1, guidance=3.0, solver="rk4", steps=4, seed=3)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_condition_dropout_rate():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    for p in (0.0, 0.1, 0.5):
        rate = float(condition_dropout(n, p, g).float().mean())
        assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-12, (p, rate)


def test_bad_conditions_are_rejected_clearly():
    v = class_mlp()
    with pytest.raises(FlowmatchError, match=r"unknown class 7; this model knows classes 0\.\.2"):
        v.check_condition(torch.tensor([0, 7]), 2)
    with pytest.raises(FlowmatchError, match="unknown class -1"):
        v.check_condition(-1, 2)
    with pytest.raises(FlowmatchError, match="integers"):
        v.check_condition(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(FlowmatchError, match=r"shape \(3,\)"):
        v.check_condition(torch.tensor([0, 1]), 3)
    with pytest.raises(FlowmatchError, match="class labels"):  # inside a solve: shape only
        v(torch.randn(2, 2, dtype=torch.float64), 0.5, torch.tensor([[0], [1]]))
    w = vector_mlp(d=4)
    with pytest.raises(FlowmatchError, match="condition vectors of size 4"):
        w.check_condition(torch.zeros(2, 3), 2)
    with pytest.raises(FlowmatchError, match="NaN"):
        w.check_condition(torch.tensor([0.0, math.nan, 0.0, 0.0]), 2)
    with pytest.raises(FlowmatchError, match="one per sample"):
        w.check_condition(torch.zeros(3, 4), 2)
    assert w.check_condition(torch.zeros(4), 5).shape == (5, 4)  # one vector for all
    flow = FlowModel(class_mlp().float(), torch.zeros(2), torch.ones(2))
    with pytest.raises(FlowmatchError, match="unknown class"):
        flow.sample(4, cond=3, steps=2)
    with pytest.raises(FlowmatchError, match="guidance needs a condition"):
        flow.sample(4, guidance=2.0, steps=2)
    with pytest.raises(FlowmatchError, match="finite number"):
        flow.sample(4, cond=1, guidance=math.inf, steps=2)


def test_unconditional_model_refuses_a_condition():
    v = build_model(ModelConfig(width=8, depth=1), (2,))
    with pytest.raises(FlowmatchError, match="without a condition"):
        v.check_condition(1, 3)
    with pytest.raises(FlowmatchError, match="without a condition"):
        v(torch.randn(3, 2), 0.5, drop=torch.zeros(3, dtype=torch.bool))


def test_model_config_builds_conditional_models():
    v = build_model(ModelConfig(width=8, depth=1, num_classes=4), (2,))
    assert isinstance(v.condition, ClassEmbedding) and v.condition.num_classes == 4
    with pytest.raises(FlowmatchError, match="not both"):
        build_model(ModelConfig(num_classes=2, cond_dim=3), (2,))


class GaussianClassField(VelocityModel):
    """The exact field of the linear path from N(0, I) to N(mu_c, s^2 I), mu_c = embedding of c.

    x_t ~ N(t mu, sigma_t^2 I) with sigma_t^2 = (1 - t)^2 + t^2 s^2, and
    u_t(x) = E[x1 - x0 | x_t = x] = mu + (t s^2 - (1 - t)) / sigma_t^2 (x - t mu).
    """

    def __init__(self, means, s):
        super().__init__()
        self.shape, self.s = (means.shape[1],), s
        self.condition = ClassEmbedding(means.shape[0], means.shape[1]).double()
        with torch.no_grad():  # class k embeds to mu_k; the null row to 0
            self.condition.table.weight.copy_(torch.cat([means, torch.zeros(1, means.shape[1])]))

    def velocity(self, xt, t, c):
        t = t[:, None]
        var = (1 - t) ** 2 + t**2 * self.s**2
        return c + (t * self.s**2 - (1 - t)) / var * (xt - t * c)


def test_conditional_log_likelihood_matches_the_closed_form():
    means = torch.tensor([[2.0, -1.0], [-3.0, 0.5]], dtype=torch.float64)
    s = 0.5
    flow = FlowModel(GaussianClassField(means, s), torch.zeros(2), torch.ones(2)).double()
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1, 0, 1, 1])
    x = means[labels] + s * torch.randn(5, 2, generator=g, dtype=torch.float64)

    def gauss(x, mu):
        return -0.5 * ((x - mu) / s).square().sum(1) - 2 * math.log(s) - math.log(2 * math.pi)

    lp = flow.log_prob(x, cond=labels, divergence="exact", atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(lp, gauss(x, means[labels]), atol=1e-4, rtol=0)
    wrong = flow.log_prob(x, cond=1 - labels, divergence="exact", atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(wrong, gauss(x, means[1 - labels]), atol=1e-4, rtol=0)
    assert bool((wrong < lp).all())
