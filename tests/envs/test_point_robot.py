"""The point-robot task: dynamics, collision geometry, the expert, bimodal demos, rollouts."""

import pytest
import torch

from flowmatch.envs import PointRobot, segment_hits_disc
from flowmatch.errors import FlowmatchError

ENV = PointRobot()


def test_step_integrates_the_velocity_and_clips_each_coordinate():
    pos = torch.tensor([[-1.0, 0.0], [-1.0, 0.5]])
    slow = torch.tensor([[0.5, 0.0], [0.9, -1.0]])  # within the box: kept
    new, hit = ENV.step(pos, slow)
    torch.testing.assert_close(new, pos + ENV.dt * slow)
    assert not hit.any()
    fast = torch.tensor([[3.0, 0.5], [-0.2, -10.0]])  # clamped coordinate by coordinate
    new, _ = ENV.step(pos, fast)
    torch.testing.assert_close(new, pos + ENV.dt * torch.tensor([[1.0, 0.5], [-0.2, -1.0]]))


def test_segment_disc_intersection():
    c, r = torch.zeros(2), 0.5
    a = torch.tensor([[-1.0, 0.0], [-1.0, 0.6], [-1.0, 0.5], [0.1, 0.1], [2.0, 0.0], [-1.0, -1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.6], [1.0, 0.5], [0.1, 0.1], [3.0, 0.0], [-0.6, -0.6]])
    # through the disc with both ends outside; passing above; tangent; a point inside;
    # on the line through the center but beyond it; ending before the disc
    expected = [True, False, True, True, False, False]
    assert segment_hits_disc(a, b, c, r).tolist() == expected


def test_a_straight_policy_collides_and_stops_at_the_obstacle():
    def straight(obs):
        return torch.tensor([ENV.max_speed, 0.0]).repeat(obs.shape[0], ENV.horizon)

    r = ENV.rollout(straight, list(range(20)))
    assert r.collision.all() and not r.success.any()
    # the robot never ends inside the disc: the colliding step is not carried out
    assert bool((r.paths.norm(dim=2) > ENV.obstacle_radius).all())


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_the_expert_succeeds_on_either_side(side):
    seeds = list(range(50))

    def expert(obs):
        s = torch.full((obs.shape[0],), side)
        return ENV.expert_chunk(obs[:, :2], obs[:, 2:], s)

    r = ENV.rollout(expert, seeds)
    assert r.success.all() and not r.collision.any()
    assert torch.equal(r.success, ENV.rollout(expert, seeds).success)  # seeded
    mid = r.paths[:, :, 0].sub(0.0).abs().argmin(dim=1)  # where each path crosses x = 0
    assert bool((r.paths[torch.arange(50), mid, 1] * side > ENV.obstacle_radius).all())


def test_demonstrations_are_bimodal_given_the_observation():
    obs, chunks = ENV.demonstrations(30, seed=0)
    assert obs.shape[1] == 4 and chunks.shape[1] == 2 * ENV.horizon
    # every first observation appears twice, once per side, with opposite lateral motion
    first = obs[:60]
    torch.testing.assert_close(first[:30], first[30:])
    lateral = chunks[:60].reshape(60, ENV.horizon, 2)[:, :, 1].sum(dim=1)  # (60,)
    assert bool((lateral[:30] > 0.2).all() and (lateral[30:] < -0.2).all())
    # so the least-squares answer, the mean chunk, stays between the two detours: it ends
    # nearer the obstacle's center line y = 0 than it started, heading into the obstacle
    y0 = first[:30, 1]
    y_end = y0 + ENV.dt * (lateral[:30] + lateral[30:]) / 2
    assert bool((y_end.abs() <= y0.abs() + 1e-6).all())


def test_rollout_rejects_short_chunks():
    with pytest.raises(FlowmatchError, match="fewer than"):
        ENV.rollout(lambda obs: torch.zeros(obs.shape[0], 2), [0])


def test_rollouts_figure(tmp_path):
    from flowmatch.viz import plot_rollouts

    straight = ENV.rollout(lambda obs: torch.ones(obs.shape[0], 2 * ENV.horizon), [0, 1, 2])
    path = plot_rollouts({"straight": straight}, ENV, tmp_path / "r.png")
    assert path.stat().st_size > 1000
