"""The camera, the instructions and the instructed point robot: pictures match states,
parsing inverts phrasing, the expert does what it is told, the metric judges behaviour."""

import pytest
import torch

from flowmatch.envs import MEANINGS, Camera, InstructedRobot, Instruction, parse, say
from flowmatch.envs.instructed_robot import episode_instructions, passing_side
from flowmatch.envs.instructions import TEMPLATES, phrasings
from flowmatch.errors import FlowmatchError

ENV = InstructedRobot()


def coverage(image):
    """How much of each pixel (E, H, W) the robot, the red and the blue goal cover.

    The grey obstacle has equal channels, so a colour's excess over another isolates an
    object: green over red for the robot, red over green and blue over green for the goals.
    """
    r, g, b = image.unbind(1)
    return {"robot": g - r, "red": r - g, "blue": b - g}


def centroid(cover, camera):
    """The coverage-weighted mean of the pixel centers, (E, 2) world coordinates."""
    w = cover.clamp_min(0).flatten(1)  # (E, H * W)
    centers = camera.pixel_centers().reshape(-1, 2)  # (H * W, 2)
    return (w @ centers) / w.sum(dim=1, keepdim=True)


def test_the_camera_draws_each_object_where_its_position_maps():
    pos, goals = ENV.reset(list(range(40)))
    image = ENV.render(pos, goals)  # (40, 3, 32, 32)
    assert image.shape == (40, *ENV.camera.shape)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    e = torch.arange(40)
    covers = coverage(image)
    for name, center in (("robot", pos), ("red", goals[:, 0]), ("blue", goals[:, 1])):
        rows, cols = ENV.camera.pixel_of(center).unbind(1)
        cover = covers[name]  # (40, 32, 32)
        # the pixel holding the object's position is as covered as any, and mostly covered
        at = cover[e, rows, cols]
        assert bool((at > 0.5).all() and (at >= cover.flatten(1).amax(dim=1)).all())
        # the drawing is centered on the position, below the size of a pixel
        torch.testing.assert_close(centroid(cover, ENV.camera), center, atol=0.01, rtol=0)
    torch.testing.assert_close(ENV.render(pos, goals), image)  # deterministic


def test_a_moving_robot_moves_its_picture_continuously():
    goals = ENV.reset([0])[1]
    x = torch.linspace(-1.2, -0.6, 25)
    pos = torch.stack([x, torch.full_like(x, 0.6)], dim=1)  # (25, 2), away from everything
    cover = coverage(ENV.render(pos, goals.expand(25, 2, 2)))["robot"]
    torch.testing.assert_close(centroid(cover, ENV.camera), pos, atol=0.01, rtol=0)


def test_camera_refuses_a_bad_size():
    with pytest.raises(FlowmatchError, match="camera height"):
        Camera(height=0)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_parsing_inverts_every_phrasing(split):
    for meaning in MEANINGS:
        for k in range(len(phrasings(meaning.kind, split))):
            text = say(meaning, k, split)
            assert parse(text) == meaning, text
            assert parse(text.upper() + "!") == meaning
    assert parse("") == Instruction()  # nothing asked
    assert parse("wander about") == Instruction()


def test_held_out_phrasings_are_new():
    for train, heldout in TEMPLATES.values():
        assert not set(train) & set(heldout)


def test_parsing_refuses_contradictions_in_one_line():
    with pytest.raises(FlowmatchError, match="two sides or two goals"):
        parse("go to the red goal and the blue goal")
    with pytest.raises(FlowmatchError, match="must be a string"):
        parse(3)
    with pytest.raises(FlowmatchError, match="side is"):
        Instruction(side=2)


def test_demonstrations_follow_their_instructions():
    images, texts, chunks = ENV.demonstrations(12, seed=0)
    assert images.shape[1:] == ENV.camera.shape and chunks.shape[1] == ENV.action_dim
    assert len(texts) == images.shape[0] == chunks.shape[0]
    # the first 48 records are the four drives of each scene from its start: one picture,
    # chunks that part towards the side each instruction names (or either, when it names none)
    first = images[:48].reshape(4, 12, -1)
    assert all(torch.equal(first[0], first[k]) for k in range(4))
    lateral = chunks[:48].reshape(48, -1, 2)[:, :, 1].sum(dim=1)  # (48,)
    drive_side = torch.tensor([1, 1, -1, -1]).repeat_interleave(12)
    assert torch.equal(torch.sign(lateral).long(), drive_side)
    meanings = [parse(t) for t in texts]
    assert {m.kind for m in meanings} == {"side", "goal", "both", "none"}
    assert all(m.side in (None, int(s)) for m, s in zip(meanings[:48], drive_side, strict=True))


def test_the_expert_follows_every_instruction_and_the_metric_sees_it():
    seeds = list(range(48))
    texts = episode_instructions(seeds)
    r = ENV.expert_rollout(seeds, texts)
    assert r.success.all() and not r.collision.any() and r.followed.all()
    for m, side, goal in zip(r.meanings, r.side.tolist(), r.reached.tolist(), strict=True):
        assert side == (m.side or side) and goal == (goal if m.goal is None else m.goal)
    # told nothing, it chooses by coin flips: judged against the instructions it was not
    # told, it misses about half of the single choices and three quarters of the pairs
    blind = ENV.expert_rollout(seeds, [""] * 48, seed=1)
    blind.meanings[:] = r.meanings
    assert blind.success.all() and 0.2 < blind.followed_rate < 0.6


def test_passing_side_reads_the_crossing():
    paths = torch.tensor(
        [[[-1.0, 0.0], [0.1, 0.5], [1.0, 0.0]], [[-1.0, 0.0], [0.0, -0.4], [1.0, 0.0]]]
    )
    assert passing_side(paths).tolist() == [1, -1]
    assert passing_side(paths[:, :1]).tolist() == [0, 0]  # never crossed


def test_rollout_gives_the_policy_pictures_and_strings():
    seen = {}

    def policy(cond):
        seen.update(cond)
        return torch.zeros(cond["image"].shape[0], ENV.action_dim)

    r = ENV.rollout(policy, [0, 1], ["go to the red goal", "pass above the obstacle"])
    assert seen["image"].shape == (2, *ENV.camera.shape)
    assert seen["instruction"] == ["go to the red goal", "pass above the obstacle"]
    assert not r.success.any() and r.followed_rate == 0.0
    with pytest.raises(FlowmatchError, match="one instruction per episode"):
        ENV.rollout(policy, [0, 1], ["go to the red goal"])


def test_instructed_rollouts_figure(tmp_path):
    from flowmatch.viz import plot_instructed_rollouts

    texts = ["go to the blue goal"] * 3
    r = ENV.expert_rollout([0, 1, 2], texts)
    path = plot_instructed_rollouts({texts[0]: r, "": r}, ENV, tmp_path / "r.png")
    assert path.stat().st_size > 1000


def test_the_data_set_packs_pictures_and_instructions_that_unpack_to_the_demos():
    from flowmatch.envs.instructed_robot import condition_spec, instruction_dataset

    data = instruction_dataset(situations=3, seed=0)
    images, texts, chunks = ENV.demonstrations(3, seed=0)
    spec = data.condition
    assert spec == condition_spec() and spec.part_names == ("image", "instruction")
    x = torch.cat([data.train_data, data.test_data])  # (N, 20)
    assert x.shape == chunks.shape
    parts = spec.unpack(torch.cat([data.train_cond, data.test_cond]))
    decoded = spec.parts[1][1].vocabulary.decode(parts["instruction"])

    def rows(imgs, txts, acts):  # every (picture, instruction, chunk) triple, as a sortable key
        pics = (imgs.flatten(1) * torch.arange(imgs[0].numel())).sum(dim=1).round(decimals=2)
        return sorted(zip(pics.tolist(), txts, acts.round(decimals=4).tolist(), strict=True))

    assert rows(parts["image"], decoded, x) == rows(images, texts, chunks)


def test_a_policy_refuses_bad_conditions_in_one_line():
    from flowmatch.envs import RegressionPolicy
    from flowmatch.envs.instructed_robot import condition_spec
    from flowmatch.models import make_condition_embedding

    encoder = make_condition_embedding(0, 0, 8, condition_spec())
    policy = RegressionPolicy(0, ENV.action_dim, width=16, depth=1, encoder=encoder)
    pos, goals = ENV.reset([0, 1])
    good = ENV.observe(pos, goals, ["go to the red goal", "go left, quickly"])  # unknown words
    assert policy(good).shape == (2, ENV.action_dim)
    bad = {
        "image of the wrong size": {**good, "image": good["image"][:, :, :16]},
        "lacks part 'instruction'": {"image": good["image"]},
        "unknown part 'speed'": {**good, "speed": torch.ones(2)},
        "list of 2 prompts": {**good, "instruction": ["go to the red goal"] * 3},
    }
    for what, cond in bad.items():
        with pytest.raises(FlowmatchError) as err:
            policy(cond)
        assert "\n" not in str(err.value), what
        assert what.split()[-1].strip("'") in str(err.value) or "shape" in str(err.value), what
