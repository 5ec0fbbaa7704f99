"""Simulated tasks for conditional generation: a point robot with bimodal demonstrations.

:class:`PointRobot` observes its position and goal as a vector; :class:`InstructedRobot` sees
the same kind of scene, with a red and a blue goal, through a camera and is told what to do.
"""

from flowmatch.envs.camera import Camera, Disc
from flowmatch.envs.instructed_robot import InstructedRobot, InstructedRollout
from flowmatch.envs.instructions import GOALS, MEANINGS, Instruction, parse, say
from flowmatch.envs.point_robot import PointRobot, Rollout, segment_hits_disc
from flowmatch.envs.policies import FlowPolicy, RegressionPolicy, fit_regression_policy

__all__ = [
    "GOALS",
    "MEANINGS",
    "Camera",
    "Disc",
    "FlowPolicy",
    "InstructedRobot",
    "InstructedRollout",
    "Instruction",
    "PointRobot",
    "RegressionPolicy",
    "Rollout",
    "fit_regression_policy",
    "parse",
    "say",
    "segment_hits_disc",
]
