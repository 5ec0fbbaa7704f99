"""Simulated tasks for conditional generation: a point robot with bimodal demonstrations."""

from flowmatch.envs.point_robot import PointRobot, Rollout, segment_hits_disc
from flowmatch.envs.policies import FlowPolicy, RegressionPolicy, fit_regression_policy

__all__ = [
    "FlowPolicy",
    "PointRobot",
    "RegressionPolicy",
    "Rollout",
    "fit_regression_policy",
    "segment_hits_disc",
]
