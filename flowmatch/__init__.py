"""flowmatch: flow-based generative modeling, from planar flows to flow matching.

Time convention everywhere: t = 0 is noise N(0, I), t = 1 is data.
"""

__version__ = "0.1.0"

from flowmatch.errors import FlowmatchError
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import ModelConfig
from flowmatch.training import TrainConfig, resume, train
from flowmatch.training.runs import load, load_run

__all__ = [
    "FlowModel",
    "FlowmatchError",
    "ModelConfig",
    "TrainConfig",
    "__version__",
    "load",
    "load_run",
    "resume",
    "train",
]
