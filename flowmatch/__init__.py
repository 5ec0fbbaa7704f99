"""flowmatch: flow-based generative modeling, from planar flows to flow matching.

Time convention everywhere: t = 0 is noise N(0, I), t = 1 is data.
"""

from flowmatch._version import __version__
from flowmatch.errors import FlowmatchError
from flowmatch.flows.base import Flow
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import ModelConfig
from flowmatch.training import TrainConfig, preset_config, resume, train
from flowmatch.training.runs import load, load_run

__all__ = [
    "Flow",
    "FlowModel",
    "FlowmatchError",
    "ModelConfig",
    "TrainConfig",
    "__version__",
    "load",
    "load_run",
    "preset_config",
    "resume",
    "train",
]
