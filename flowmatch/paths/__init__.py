"""Probability paths from noise (t = 0) to data (t = 1)."""

from flowmatch.paths.affine import PATHS, AffinePath, PathSample, get_path
from flowmatch.paths.schedules import (
    CosineSchedule,
    FunctionSchedule,
    LinearSchedule,
    Schedule,
    ScheduleValues,
)

__all__ = [
    "PATHS",
    "AffinePath",
    "CosineSchedule",
    "FunctionSchedule",
    "LinearSchedule",
    "PathSample",
    "Schedule",
    "ScheduleValues",
    "get_path",
]
