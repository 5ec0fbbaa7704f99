"""The point robot seen by a camera and told what to do: two goals, one obstacle, instructions.

The scene of :class:`~flowmatch.envs.PointRobot` gains a second goal: a red one and a blue one,
each anywhere in the goal region, at least ``goal_gap`` apart, drawn per episode. (Were the
goals always on opposite sides of the center line, the named goal's height would be an XOR of
the colour word and of which colour is on top, uncorrelated with either alone: gradient
descent then sits on a plateau for thousands of steps before it binds words to pictures.)
The robot observes the scene only through its camera (:class:`~flowmatch.envs.camera.Camera`):
a (3, H, W) picture of the grey obstacle, the two goals in their colours and itself in green.
It is told an instruction (:mod:`flowmatch.envs.instructions`) such as "go to the blue goal"
or "take the upper side to the red goal"; its condition is c = {image, instruction}.

The expert follows the instruction: it passes the obstacle on the named side and reaches the
named goal, and where the instruction leaves a choice open, every situation is demonstrated
with each choice, so p(chunk | c) has two modes there (a side, or a goal) and one where the
instruction settles both. An episode ends on a collision, on reaching either goal, or after
``max_steps``. It *succeeds* when it reached a goal without a collision, and it *followed*
its instruction when it passed the obstacle on the named side (if one is named) and reached
the named goal (if one is named).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import torch
from torch import Tensor

from flowmatch.data.conditions import ConditionSpec
from flowmatch.data.text import Vocabulary
from flowmatch.envs.camera import Camera, Disc
from flowmatch.envs.instructions import GOALS, MEANINGS, Instruction, parse, phrasings, say
from flowmatch.envs.point_robot import PointRobot, Rollout
from flowmatch.errors import FlowmatchError, check_int

__all__ = [
    "GOAL_COLORS",
    "InstructedRobot",
    "InstructedRollout",
    "condition_spec",
    "episode_instructions",
    "instruction_dataset",
]

GOAL_COLORS = {"red": (1.0, 0.0, 0.0), "blue": (0.0, 0.0, 1.0)}
ROBOT_COLOR = (0.0, 1.0, 0.0)
OBSTACLE_COLOR = (0.5, 0.5, 0.5)
Condition = dict[str, Tensor | list[str]]


@dataclass
class InstructedRollout(Rollout):
    """What closed-loop episodes with instructions did: a :class:`Rollout` and its behaviour.

    Attributes:
        goals: (E, 2, 2) positions of both goals, in the order of :data:`GOALS`.
        instructions: the E instruction strings the policy was given.
        meanings: the E instructions its behaviour is judged against (parsed from the
            strings, unless given otherwise, e.g. when the policy was told nothing).
        side: (E,) long, +1 or -1 for the side the obstacle was passed on, 0 if it was not.
        reached: (E,) long, index of the goal reached, -1 for none.
    """

    instructions: list[str]
    meanings: list[Instruction]
    side: Tensor
    reached: Tensor

    @property
    def followed(self) -> Tensor:
        """(E,) bool: the named side was taken and the named goal reached, where named."""
        side = torch.tensor([0 if m.side is None else m.side for m in self.meanings])
        goal = torch.tensor([-1 if m.goal is None else m.goal for m in self.meanings])
        side_ok = (side == 0) | (self.side == side)
        goal_ok = (goal < 0) | (self.reached == goal)
        return side_ok & goal_ok

    @property
    def followed_rate(self) -> float:
        return float(self.followed.float().mean())


def episode_instructions(seeds: list[int] | Tensor, split: str = "train") -> list[str]:
    """One instruction per evaluation episode, cycling through meanings and phrasings.

    Seed s gets meaning ``MEANINGS[s % 8]`` said with template ``s // 8``, so consecutive
    seeds cover every meaning equally often.
    """
    out = []
    for s in [int(s) for s in seeds]:
        meaning = MEANINGS[s % len(MEANINGS)]
        out.append(say(meaning, s // len(MEANINGS), split))
    return out


@dataclass(frozen=True)
class InstructedRobot:
    """The task: the point robot's dynamics, two coloured goals, a camera and the expert.

    Attributes:
        robot: dynamics, obstacle, start region and the expert's waypoints.
        camera: how the scene is drawn.
        goal_y: the goals' y lies in [-goal_y, goal_y].
        goal_gap: the least vertical distance between the two goals.
        robot_radius: drawn radius of the robot (it moves as a point).

    Example:
        >>> env = InstructedRobot()
        >>> pos, goals = env.reset([0, 1])
        >>> env.render(pos, goals).shape, goals.shape  # red and blue goal per episode
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 2, 2]))
    """

    robot: PointRobot = field(default_factory=PointRobot)
    camera: Camera = field(default_factory=Camera)
    goal_y: float = 0.45
    goal_gap: float = 0.35
    robot_radius: float = 0.08

    @property
    def action_dim(self) -> int:
        """Size of a flattened action chunk, horizon * 2."""
        return self.robot.action_dim

    def reset(self, seeds: list[int] | Tensor) -> tuple[Tensor, Tensor]:
        """Start positions (E, 2) and goal positions (E, 2, 2), each episode from its seed.

        Starts are drawn as in :meth:`PointRobot.reset`; the goals have x uniform in the
        robot's ``goal_x``. One goal's y is uniform in [-goal_y, goal_y], the other's uniform
        over the part of that range at least ``goal_gap`` away from it, and a fair coin says
        which of them is red.
        """
        r = self.robot
        starts, goals = [], []
        for seed in [int(s) for s in seeds]:
            u = torch.rand(7, generator=torch.Generator().manual_seed(seed)).tolist()
            starts.append([_lerp(r.start_x, u[0]), r.start_y * (2 * u[1] - 1)])
            h, gap = self.goal_y, self.goal_gap
            y1 = _lerp((-h, h), u[3])
            below = max(0.0, y1 - gap + h)  # room for the other goal under the first
            room = below + max(0.0, h - y1 - gap)  # and over it
            v = u[5] * room
            y2 = -h + v if v < below else y1 + gap + (v - below)
            first, second = [_lerp(r.goal_x, u[2]), y1], [_lerp(r.goal_x, u[4]), y2]
            goals.append([first, second] if u[6] < 0.5 else [second, first])
        return torch.tensor(starts), torch.tensor(goals)

    def render(self, pos: Tensor, goals: Tensor) -> Tensor:
        """The camera's pictures (E, 3, H, W) of robots at ``pos`` (E, 2) with ``goals``."""
        discs = [Disc(torch.zeros_like(pos), self.robot.obstacle_radius, OBSTACLE_COLOR)]
        for k, name in enumerate(GOALS):
            discs.append(Disc(goals[:, k], self.robot.goal_tolerance, GOAL_COLORS[name]))
        discs.append(Disc(pos, self.robot_radius, ROBOT_COLOR))
        return self.camera.render(discs)

    def observe(self, pos: Tensor, goals: Tensor, instructions: list[str]) -> Condition:
        """The policy's condition {"image": (E, 3, H, W), "instruction": E strings}."""
        return {"image": self.render(pos, goals), "instruction": list(instructions)}

    def arrived(self, pos: Tensor, goals: Tensor) -> Tensor:
        """(E,) long: index of the goal within tolerance of ``pos``, -1 for none."""
        near = (pos[:, None] - goals).norm(dim=2) <= self.robot.goal_tolerance  # (E, 2)
        return torch.where(near.any(dim=1), near.float().argmax(dim=1), -1)

    def expert_chunk(self, pos: Tensor, goals: Tensor, side: Tensor, goal: Tensor) -> Tensor:
        """The expert's next actions (E, horizon, 2) passing on ``side`` (E,) to ``goal`` (E,)."""
        target = goals[torch.arange(goals.shape[0]), goal]  # (E, 2)
        return self.robot.expert_chunk(pos, target, side)

    def demonstrations(
        self, situations: int, seed: int = 0, noise: float = 0.1, split: str = "train"
    ) -> tuple[Tensor, list[str], Tensor]:
        """Expert (image, instruction, action chunk) triples that follow their instructions.

        Each of ``situations`` scenes (from ``seed``) is driven four times, once for each
        side and goal, with the same action noise in all four (std ``noise`` * max_speed on
        the executed actions; the recorded chunks are the noise-free plans). Every recorded
        state gets an instruction that its drive follows, naming its side and its goal each
        with probability 1/2, in a random phrasing of ``split``: a side-only instruction is
        thus shown going to either goal, a goal-only one passing on either side, and the
        empty instruction "" (a quarter of them) doing any of the four, from the very same
        pictures up to the branch. The empty instruction is how a policy is told nothing.

        Returns:
            images (N, 3, H, W), N instruction strings and flattened chunks (N, horizon * 2).
        """
        check_int(situations, "situations")
        r = self.robot
        g = torch.Generator().manual_seed(seed)
        pos, goals = self.reset(torch.randint(0, 2**31 - 1, (situations,), generator=g))
        pos, goals = pos.repeat(4, 1), goals.repeat(4, 1, 1)  # (4S, ...): four drives each
        side = torch.tensor([1.0, 1.0, -1.0, -1.0]).repeat_interleave(situations)  # (4S,)
        goal = torch.tensor([0, 1, 0, 1]).repeat_interleave(situations)
        active = torch.ones(4 * situations, dtype=torch.bool)
        images, texts, chunks = [], [], []
        for _ in range(r.max_steps):
            idx = active.nonzero().squeeze(1)
            images.append(self.render(pos[idx], goals[idx]))
            chunks.append(self.expert_chunk(pos[idx], goals[idx], side[idx], goal[idx]))
            texts += self._instructions(side[idx], goal[idx], g, split)
            eps = noise * r.max_speed * torch.randn(situations, 2, generator=g)
            target = goals[torch.arange(4 * situations), goal]
            a = r.expert_action(pos, target, side) + eps.repeat(4, 1)
            pos = torch.where(active[:, None], pos + r.dt * r.clip(a), pos)
            active &= self.arrived(pos, goals) < 0
            if not bool(active.any()):
                break
        return torch.cat(images), texts, torch.cat(chunks).flatten(1)

    def _instructions(
        self, side: Tensor, goal: Tensor, g: torch.Generator, split: str
    ) -> list[str]:
        """Random instructions, one per drive, that the drives (side, goal) follow."""
        names = torch.randint(2, (2, side.shape[0]), generator=g).bool().tolist()
        picks = torch.randint(1000, (side.shape[0],), generator=g).tolist()
        out = []
        for s, k, (named_side, named_goal), pick in zip(
            side.tolist(), goal.tolist(), zip(*names, strict=True), picks, strict=True
        ):
            meaning = Instruction(int(s) if named_side else None, k if named_goal else None)
            out.append(say(meaning, pick, split))  # the template number wraps around
        return out

    def rollout(
        self,
        policy: Callable[[Condition], Tensor],
        seeds: list[int] | Tensor,
        instructions: list[str],
        meanings: list[Instruction] | None = None,
    ) -> InstructedRollout:
        """Run the policy in closed loop on one episode per seed, all at once.

        Every ``execute`` steps the policy maps the condition {image (E, 3, H, W),
        instruction: E strings} to action chunks (E, horizon * 2) or (E, horizon, 2).

        Args:
            policy: condition -> action chunks.
            seeds: one seed per episode (start and goals).
            instructions: one instruction string per episode, as given to the policy.
            meanings: what the episodes are judged against; by default the parsed
                instructions (pass them to judge a policy that was told something else).

        Returns:
            The :class:`InstructedRollout`.
        """
        pos, goals = self.reset(seeds)
        return self._run(
            lambda p: policy(self.observe(p, goals, instructions)),
            pos, goals, instructions, meanings,
        )  # fmt: skip

    def expert_rollout(
        self, seeds: list[int] | Tensor, instructions: list[str], seed: int = 0
    ) -> InstructedRollout:
        """The expert in closed loop, told the parsed instructions; it sees the true state.

        Where an instruction leaves the side or the goal open, the expert flips a fair coin
        (from ``seed``) per episode.
        """
        pos, goals = self.reset(seeds)
        meanings = [parse(text) for text in instructions]
        coins = torch.randint(2, (2, len(meanings)), generator=torch.Generator().manual_seed(seed))
        side = 2.0 * coins[0] - 1  # (E,) a fair side, kept where the instruction names one
        goal = coins[1].clone()  # (E,)
        for i, m in enumerate(meanings):
            side[i] = side[i] if m.side is None else m.side
            goal[i] = goal[i] if m.goal is None else m.goal
        return self._run(
            lambda p: self.expert_chunk(p, goals, side, goal), pos, goals, instructions, meanings
        )

    def _run(
        self,
        plan: Callable[[Tensor], Tensor],
        pos: Tensor,
        goals: Tensor,
        instructions: list[str],
        meanings: list[Instruction] | None,
    ) -> InstructedRollout:
        """Closed-loop episodes from ``pos`` (E, 2) with ``plan``: positions -> chunks."""
        e = pos.shape[0]
        if len(instructions) != e or (meanings is not None and len(meanings) != e):
            raise FlowmatchError(
                f"need one instruction per episode ({e}), got {len(instructions)}"
                + ("" if meanings is None else f" instructions and {len(meanings)} meanings")
            )
        if meanings is None:
            meanings = [parse(text) for text in instructions]
        success, collision, steps, paths = self.robot.execute_chunks(
            plan, pos, lambda p: self.arrived(p, goals) >= 0
        )
        end = paths[torch.arange(e), steps]  # (E, 2) where each episode ended
        reached = torch.where(success, self.arrived(end, goals), -1)
        return InstructedRollout(
            success, collision, steps, paths, goals, list(instructions), list(meanings),
            passing_side(paths), reached,
        )  # fmt: skip


def passing_side(paths: Tensor) -> Tensor:
    """(E,) long: the sign of y where each path (E, T, 2) first reaches x >= 0, else 0."""
    crossed = paths[:, :, 0] >= 0  # (E, T)
    first = crossed.float().argmax(dim=1)  # (E,) first True, 0 if none
    y = paths[torch.arange(paths.shape[0]), first, 1]
    return torch.where(crossed.any(dim=1), torch.sign(y).long(), 0)


def _lerp(bounds: tuple[float, float], u: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * u


INSTRUCTION_LENGTH = 12
"""Most words of an instruction the policy reads (the longest phrasing has 11)."""


def condition_spec(env: InstructedRobot | None = None) -> ConditionSpec:
    """The policy's condition: {"image": (3, H, W) picture, "instruction": a string}.

    The instruction's vocabulary holds every word of the training phrasings, so it does not
    depend on which phrasings a draw of demonstrations happened to use; words of held-out
    phrasings that training never used become ``<unk>``.
    """
    env = env or InstructedRobot()
    texts = [say(m, k) for m in MEANINGS for k in range(len(phrasings(m.kind)))]
    return ConditionSpec.combine(
        {
            "image": ConditionSpec.image(env.camera.shape),
            "instruction": ConditionSpec.text(Vocabulary.build(texts), INSTRUCTION_LENGTH),
        }
    )


def instruction_dataset(situations: int = 100, seed: int = 0):
    """The built-in data set ``point-robot-instructed``: chunks (N, 20) given {image, instruction}.

    Each sample x is a flattened action chunk of :meth:`InstructedRobot.demonstrations` and
    its condition c the picture it was planned from with the instruction it follows, packed
    as :func:`condition_spec` says; 10% of the triples are held out.
    """
    from flowmatch.data import ArrayDataset

    chunks, cond, spec = _encoded_demonstrations(situations, seed)
    return ArrayDataset(
        chunks,
        "point-robot-instructed",
        holdout_fraction=0.1,
        split_seed=0,
        cond=cond,
        condition=spec,
    )


@cache
def _encoded_demonstrations(situations: int, seed: int) -> tuple[Tensor, Tensor, ConditionSpec]:
    """The demonstrations' chunks (N, 20), encoded conditions (N, C) and spec, made once per
    process: each build renders every picture, and one process may train several runs on
    them (a policy and its baselines). The data set indexes copies of them, so the cached
    tensors are never changed."""
    env = InstructedRobot()
    images, texts, chunks = env.demonstrations(situations, seed)
    spec = condition_spec(env)
    cond = spec.encode({"image": images, "instruction": texts}, chunks.shape[0])
    return chunks, cond, spec
