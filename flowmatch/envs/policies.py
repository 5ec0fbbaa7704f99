"""Policies mapping observations to action chunks: a flow-matching one and a regression one.

A flow-matching policy samples a chunk x ~ p(x | o) by integrating v(x_t, t, o) from noise,
so with bimodal demonstrations it commits to one mode per sample. A regression policy trained
by least squares returns E[x | o], the average of the modes, which may be no mode at all.

An observation o is a vector (E, d), or any condition a flow model takes, such as the dict
{"image": (E, 3, H, W), "instruction": E strings} of
:class:`~flowmatch.envs.InstructedRobot`; a regression policy reads the latter through a
condition encoder (:func:`~flowmatch.models.make_condition_embedding`) trained with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from flowmatch.errors import FlowmatchError

__all__ = ["FlowPolicy", "RegressionPolicy", "condition_rows", "fit_regression_policy"]


def condition_rows(obs) -> int:
    """The number E of observations in a batch: rows of a tensor, or of a dict's first part."""
    if isinstance(obs, Mapping):
        if not obs:
            raise FlowmatchError("an observation dict needs at least one part")
        obs = next(iter(obs.values()))
    return obs.shape[0] if isinstance(obs, Tensor) else len(obs)


class FlowPolicy:
    """Act by sampling an action chunk from a conditional flow model given the observation.

    Args:
        flow: a :class:`~flowmatch.FlowModel` trained on chunks with observation conditions.
        solver: ODE solver name.
        steps: solver steps (NFE = steps for euler, 2 * steps for midpoint).
        seed: seed of the policy's noise (one stream for the whole rollout).
        guidance: optional classifier-free guidance scale w.
    """

    def __init__(
        self,
        flow,
        *,
        solver: str = "midpoint",
        steps: int = 5,
        seed: int = 0,
        guidance: float | None = None,
    ) -> None:
        self.flow, self.solver, self.steps, self.guidance = flow, solver, steps, guidance
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, obs: Tensor | Mapping) -> Tensor:
        """Chunks (E, D) for observations (E, d), or a dict of E observations' parts."""
        return self.flow.sample(
            condition_rows(obs),
            cond=obs,
            guidance=self.guidance,
            solver=self.solver,
            steps=self.steps,
            generator=self.generator,
        )


class RegressionPolicy(nn.Module):
    """A deterministic policy x = f(o): an MLP on standardized observations and actions.

    Args:
        obs_dim: observation size d (ignored with an ``encoder``).
        action_dim: flattened chunk size D.
        width: hidden units per layer.
        depth: hidden layers.
        encoder: optional condition encoder (a
            :class:`~flowmatch.models.conditioning.ConditionEmbedding`) whose e(o) (E, dim)
            the MLP reads instead of the standardized vector o, e.g. for pictures and
            instructions; it trains with the MLP.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        width: int = 256,
        depth: int = 3,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        layers: list[nn.Module] = []
        fan_in = obs_dim if encoder is None else encoder.dim
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.SiLU()]
            fan_in = width
        layers.append(nn.Linear(fan_in, action_dim))
        self.net = nn.Sequential(*layers)
        for name, size in (("obs", obs_dim), ("act", action_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))

    def features(self, obs: Tensor) -> Tensor:
        """The MLP's input (E, d or dim) for stored observations (E, ...)."""
        if self.encoder is None:
            return (obs - self.obs_mean) / self.obs_std
        return self.encoder(obs, obs.shape[0])

    def forward(self, obs: Tensor | Mapping) -> Tensor:
        """Chunks (E, D) for observations (E, d), or a dict of E observations' parts."""
        if self.encoder is not None:
            obs = self.encoder.check(obs, condition_rows(obs))  # the stored (E, ...) form
        return self.net(self.features(obs)) * self.act_std + self.act_mean

    @torch.no_grad()
    def __call__(self, obs: Tensor | Mapping) -> Tensor:  # acting never needs gradients
        return super().__call__(obs)


def fit_regression_policy(
    obs: Tensor,
    actions: Tensor,
    *,
    width: int = 256,
    depth: int = 3,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    encoder: nn.Module | None = None,
) -> RegressionPolicy:
    """Fit x = f(o) to demonstrations by least squares (behavior cloning with an MSE loss).

    Minimizes E ||f(o) - x||^2 over minibatches drawn with replacement, with Adam and a cosine
    learning-rate decay; the minimizer is the conditional mean E[x | o].

    Args:
        obs: observations (N, d), or stored conditions (N, ...) that ``encoder`` reads.
        actions: flattened action chunks (N, D).
        width: hidden units per layer.
        depth: hidden layers.
        steps: optimizer steps.
        batch_size: samples per step.
        lr: peak learning rate.
        seed: seed of the initialization and the minibatches.
        encoder: optional condition encoder trained with the MLP (see
            :class:`RegressionPolicy`); built by the caller, initialized as it is.

    Returns:
        The trained policy, in eval mode.
    """
    if obs.ndim < 2 or actions.ndim != 2 or obs.shape[0] != actions.shape[0]:
        raise FlowmatchError(
            f"need observations (N, ...) and actions (N, D) with the same N, got "
            f"{tuple(obs.shape)} and {tuple(actions.shape)}"
        )
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        obs_dim = obs.shape[1] if encoder is None else 0
        policy = RegressionPolicy(obs_dim, actions.shape[1], width, depth, encoder)
    if encoder is None:
        policy.obs_mean.copy_(obs.mean(0))
        policy.obs_std.copy_(obs.std(0).clamp_min(1e-6))
    policy.act_mean.copy_(actions.mean(0))
    policy.act_std.copy_(actions.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(obs.shape[0], (batch_size,), generator=g)
        target = (actions[idx] - policy.act_mean) / policy.act_std
        pred = policy.net(policy.features(obs[idx]))
        loss = (pred - target).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return policy.eval()
