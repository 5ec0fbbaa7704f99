"""A 2-D point robot that must reach a goal past a round obstacle, with bimodal expert demos.

The robot at position p in R^2 moves by p' = p + dt * a, with each coordinate of the action a
(a velocity) clipped to [-max_speed, max_speed]. A disc of radius r sits between the start
region (left) and the goal region (right). A step collides when the segment from p to p'
meets the disc; an episode ends on a collision (failure), on reaching within
``goal_tolerance`` of the goal (success), or after ``max_steps`` steps (failure).

The observation is o = (p, g) (4,), robot and goal positions. The expert passes the obstacle
on a side s in {+1 (above), -1 (below)}, and every situation (start and goal) is shown on
both sides: it drives straight right up to x = -bx, then diagonally to (-wx, s wy), along to
(wx, s wy), and on to the goal, always at full speed. Both sides leave from the same straight
approach, so there the expert's action chunk given o has two modes of equal weight, and
their average keeps going straight into the obstacle: the case where regressing actions by
least squares fails and a generative policy, which samples one mode, does not.

The policy's output is an *action chunk*: the next ``horizon`` actions (horizon, 2), of which
the first ``execute`` (by default all of them) are carried out before the robot observes and
plans again. A chunk from the start already reaches past the branch, so a policy must commit
to a side when it plans; the averaged chunk does not.

Everything is vectorized over E episodes; positions are (E, 2) tensors.

References:
    Chi et al., "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion" (2023),
    action chunks and multimodal demonstrations; Zhao et al., "Learning Fine-Grained Bimanual
    Manipulation with Low-Cost Hardware" (2023), action chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError, check_int

__all__ = ["PointRobot", "Rollout", "demonstration_dataset", "segment_hits_disc"]


def segment_hits_disc(a: Tensor, b: Tensor, center: Tensor, radius: float) -> Tensor:
    """Whether the segments [a_i, b_i] meet the closed disc |x - center| <= radius.

    The closest point of a segment to the center is a + u (b - a) with
    u = clip(<center - a, b - a> / |b - a|^2, 0, 1); the segment meets the disc when that
    point is within the radius.

    Args:
        a: segment starts (E, 2).
        b: segment ends (E, 2).
        center: disc center (2,).
        radius: disc radius.

    Returns:
        (E,) bool.

    Example:
        >>> a, b = torch.tensor([[-1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
        >>> segment_hits_disc(a, b, torch.zeros(2), 0.5).tolist()  # both ends outside
        [True]
    """
    d = b - a  # (E, 2)
    length2 = d.square().sum(dim=1)  # (E,)
    u = ((center - a) * d).sum(dim=1) / length2.clamp_min(1e-30)
    closest = a + u.clamp(0.0, 1.0)[:, None] * d  # (E, 2)
    return (closest - center).square().sum(dim=1) <= radius**2


@dataclass
class Rollout:
    """What closed-loop episodes did.

    Attributes:
        success: (E,) bool, reached the goal without a collision.
        collision: (E,) bool, hit the obstacle.
        steps: (E,) long, steps taken until the episode ended.
        paths: (E, T + 1, 2) positions; after an episode ends its position is repeated.
        goals: (E, 2) goal positions.
    """

    success: Tensor
    collision: Tensor
    steps: Tensor
    paths: Tensor
    goals: Tensor

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    @property
    def collision_rate(self) -> float:
        return float(self.collision.float().mean())


@dataclass(frozen=True)
class PointRobot:
    """The task: dynamics, obstacle, start and goal regions, the expert and rollouts.

    Example:
        >>> env = PointRobot()
        >>> obs, act = env.demonstrations(4, seed=0)
        >>> obs.shape[1], act.shape[1]  # o = (p, g); 10 actions of 2 numbers
        (4, 20)
    """

    dt: float = 0.1
    max_speed: float = 1.0
    obstacle_radius: float = 0.3
    goal_tolerance: float = 0.1
    max_steps: int = 60
    horizon: int = 10
    execute: int = 10
    start_x: tuple[float, float] = (-1.2, -1.0)
    start_y: float = 0.2
    goal_x: tuple[float, float] = (1.0, 1.2)
    goal_y: float = 0.2
    branch_x: float = 0.75
    waypoint_x: float = 0.3
    waypoint_y: float = 0.45

    @property
    def obs_dim(self) -> int:
        return 4

    @property
    def action_dim(self) -> int:
        """Size of a flattened action chunk, horizon * 2."""
        return 2 * self.horizon

    @property
    def center(self) -> Tensor:
        return torch.zeros(2)

    # -- dynamics ---------------------------------------------------------------------------
    def reset(self, seeds: list[int] | Tensor) -> tuple[Tensor, Tensor]:
        """Start and goal positions (E, 2) of the episodes, each drawn from its own seed.

        Starts are uniform in ``start_x`` x [-start_y, start_y], goals in ``goal_x`` x
        [-goal_y, goal_y].
        """
        starts, goals = [], []
        for seed in [int(s) for s in seeds]:
            g = torch.Generator().manual_seed(seed)
            u = torch.rand(4, generator=g)
            starts.append([_lerp(self.start_x, u[0]), self.start_y * (2 * u[1] - 1)])
            goals.append([_lerp(self.goal_x, u[2]), self.goal_y * (2 * u[3] - 1)])
        return torch.tensor(starts), torch.tensor(goals)

    def observe(self, pos: Tensor, goal: Tensor) -> Tensor:
        """o = (p, g), (E, 4)."""
        return torch.cat([pos, goal], dim=1)

    def clip(self, action: Tensor) -> Tensor:
        """Clamp each coordinate of the actions (E, 2) to [-max_speed, max_speed]."""
        return action.clamp(-self.max_speed, self.max_speed)

    def step(self, pos: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """One step p' = p + dt * clip(a); returns (p' (E, 2), collided (E,) bool)."""
        new = pos + self.dt * self.clip(action)
        return new, segment_hits_disc(pos, new, self.center, self.obstacle_radius)

    def reached(self, pos: Tensor, goal: Tensor) -> Tensor:
        """(E,) bool: within ``goal_tolerance`` of the goal."""
        return (pos - goal).norm(dim=1) <= self.goal_tolerance

    # -- the expert -------------------------------------------------------------------------
    def expert_action(self, pos: Tensor, goal: Tensor, side: Tensor) -> Tensor:
        """The expert's velocity (E, 2): full speed right, then towards its waypoints and goal.

        ``side`` (E,) is +1 (pass above) or -1 (below). Left of x = -branch_x it drives
        straight right, whatever the side; then its target is the first waypoint still to the
        right of the robot, then the goal; the last step lands on the target.
        """
        wx, wy = self.waypoint_x, self.waypoint_y
        w1 = torch.stack([torch.full_like(side, -wx), side * wy], dim=1)  # (E, 2)
        w2 = torch.stack([torch.full_like(side, wx), side * wy], dim=1)
        x = pos[:, :1]
        target = torch.where(x < -wx - 1e-6, w1, torch.where(x < wx - 1e-6, w2, goal))
        delta = target - pos
        dist = delta.abs().amax(dim=1, keepdim=True)  # the box norm: steps to get there
        speed = torch.minimum(dist / self.dt, torch.full_like(dist, self.max_speed))
        action = delta / dist.clamp_min(1e-12) * speed
        straight = torch.tensor([self.max_speed, 0.0]).expand_as(action)
        return torch.where(x < -self.branch_x, straight, action)

    def expert_chunk(self, pos: Tensor, goal: Tensor, side: Tensor) -> Tensor:
        """The expert's next ``horizon`` actions from ``pos`` (noise-free), (E, horizon, 2)."""
        actions = []
        for _ in range(self.horizon):
            a = self.expert_action(pos, goal, side)
            actions.append(a)
            pos = pos + self.dt * a
        return torch.stack(actions, dim=1)

    def demonstrations(
        self, situations: int, seed: int = 0, noise: float = 0.1
    ) -> tuple[Tensor, Tensor]:
        """Expert (observation, action chunk) pairs, every situation shown on both sides.

        Each of ``situations`` start-and-goal draws (from ``seed``) is demonstrated twice,
        once passing above and once below, with the same action noise in both, so up to the
        branch the two demonstrations visit the very same observations with chunks that
        then part ways: p(chunk | o) has two equal modes there, however flexible the model.
        (With one demonstration per situation a network could memorize the side from the
        goal in o.) The executed actions get Gaussian noise of std ``noise`` * max_speed so
        the demos visit states off the nominal path, but the recorded chunks are the
        expert's noise-free plans from each state. Demos stop at the goal.

        Returns:
            observations (N, 4) and flattened chunks (N, horizon * 2).
        """
        check_int(situations, "situations")
        g = torch.Generator().manual_seed(seed)
        seeds = torch.randint(0, 2**31 - 1, (situations,), generator=g)
        pos, goal = self.reset(seeds)
        pos, goal = pos.repeat(2, 1), goal.repeat(2, 1)  # (2S, 2): each situation twice
        side = torch.cat([torch.ones(situations), -torch.ones(situations)])  # (2S,)
        active = torch.ones(2 * situations, dtype=torch.bool)
        obs, chunks = [], []
        for _ in range(self.max_steps):
            obs.append(self.observe(pos, goal)[active])
            chunks.append(self.expert_chunk(pos, goal, side)[active].flatten(1))
            eps = noise * self.max_speed * torch.randn(situations, 2, generator=g)
            a = self.expert_action(pos, goal, side) + eps.repeat(2, 1)
            pos = torch.where(active[:, None], pos + self.dt * self.clip(a), pos)
            active &= ~self.reached(pos, goal)
            if not bool(active.any()):
                break
        return torch.cat(obs), torch.cat(chunks)

    # -- closed loop ------------------------------------------------------------------------
    def rollout(self, policy: Callable[[Tensor], Tensor], seeds: list[int] | Tensor) -> Rollout:
        """Run the policy in closed loop on one episode per seed, all at once.

        Every ``execute`` steps the policy maps the observations (E, 4) to action chunks
        (E, horizon * 2) or (E, horizon, 2), whose first ``execute`` actions are carried out.

        Args:
            policy: observations -> action chunks.
            seeds: one seed per episode (start and goal).

        Returns:
            The :class:`Rollout`.
        """
        pos, goal = self.reset(seeds)
        success, collision, steps, paths = self.execute_chunks(
            lambda p: policy(self.observe(p, goal)), pos, lambda p: self.reached(p, goal)
        )
        return Rollout(success, collision, steps, paths, goal)

    def execute_chunks(
        self,
        plan: Callable[[Tensor], Tensor],
        pos: Tensor,
        arrived: Callable[[Tensor], Tensor],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The closed loop: plan a chunk, carry out its first ``execute`` actions, repeat.

        An episode ends on a collision (the colliding step is not carried out), when
        ``arrived`` says so, or after ``max_steps`` steps.

        Args:
            plan: positions (E, 2) -> action chunks (E, horizon * 2) or (E, horizon, 2).
            pos: start positions (E, 2).
            arrived: positions (E, 2) -> (E,) bool, the episode succeeded there.

        Returns:
            success (E,) bool, collision (E,) bool, steps (E,) long and paths (E, T + 1, 2).
        """
        if not 1 <= self.execute <= self.horizon:
            raise FlowmatchError(
                f"execute must be in 1..horizon={self.horizon}, got {self.execute}"
            )
        e = pos.shape[0]
        done = torch.zeros(e, dtype=torch.bool)
        success, collision = done.clone(), done.clone()
        steps = torch.zeros(e, dtype=torch.long)
        path = [pos]
        t = 0
        while t < self.max_steps and not bool(done.all()):
            chunk = plan(pos).detach().float().reshape(e, -1, 2)
            if chunk.shape[1] < self.execute:
                raise FlowmatchError(
                    f"the policy returned {chunk.shape[1]} actions per chunk, fewer than "
                    f"execute={self.execute}"
                )
            for k in range(min(self.execute, self.max_steps - t)):
                new, hit = self.step(pos, chunk[:, k])
                live = ~done
                collision |= live & hit
                pos = torch.where((live & ~hit)[:, None], new, pos)
                success |= live & ~hit & arrived(pos)
                steps += live.long()
                done = success | collision
                path.append(pos)
                t += 1
        return success, collision, steps, torch.stack(path, dim=1)


def _lerp(bounds: tuple[float, float], u: Tensor) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * float(u)


def demonstration_dataset(situations: int = 100, seed: int = 0):
    """The built-in data set ``point-robot``: expert chunks (N, 20) with observations (N, 4).

    Each sample x is a flattened action chunk and its condition c the observation it was
    planned from; 10% of the pairs are held out.
    """
    from flowmatch.data import ArrayDataset

    obs, chunks = PointRobot().demonstrations(situations, seed)
    return ArrayDataset(chunks, "point-robot", holdout_fraction=0.1, split_seed=0, cond=obs)
