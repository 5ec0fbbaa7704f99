"""A prompt-conditioned flow learns: two prompts give samples in two different classes."""

import torch

from flowmatch import FlowModel
from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.text import Vocabulary
from flowmatch.models import MLPVelocity, condition_dropout
from flowmatch.training.methods import flow_matching_loss

# class 0 lies at x = -2, class 1 at x = +2; each has several phrasings
PHRASINGS = (
    ("a point on the left", "left point", "the left one"),
    ("a point on the right", "right point", "the right one"),
)
CENTERS = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])


def test_two_prompts_give_samples_in_two_classes():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    vocab = Vocabulary.build(p for group in PHRASINGS for p in group)
    spec = ConditionSpec.text(vocab, length=6)
    velocity = MLPVelocity(2, width=64, depth=2, condition=spec, cond_embed_dim=32)
    flow = FlowModel(velocity, torch.zeros(2), torch.ones(2))
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    captions = [p for group in PHRASINGS for p in group]
    tokens = spec.encode(captions, len(captions))  # (6, L)
    label = torch.tensor([k for k, group in enumerate(PHRASINGS) for _ in group])  # (6,)
    for _ in range(80):
        pick = torch.randint(len(captions), (64,), generator=g)
        x1 = CENTERS[label[pick]] + 0.3 * torch.randn(64, 2, generator=g)  # (B, 2)
        x0 = torch.randn(64, 2, generator=g)
        t = torch.rand(64, generator=g)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        drop = condition_dropout(64, 0.1, g)
        loss = flow_matching_loss(flow, xt, t, x1 - x0, tokens[pick], drop)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        # an unseen phrasing (and an unknown word) still lands in its class
        left = flow.sample(64, cond="the point left please", guidance=2.0, steps=8, seed=1)
        right = flow.sample(64, cond="a right point", guidance=2.0, steps=8, seed=1)
    assert (left[:, 0] < 0).float().mean() > 0.9
    assert (right[:, 0] > 0).float().mean() > 0.9
