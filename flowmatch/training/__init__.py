"""Training: configs, methods (losses), the loop, EMA, checkpoints and progress."""

from flowmatch.training.checkpoint import load_checkpoint, read_run_record, save_checkpoint
from flowmatch.training.config import TrainConfig
from flowmatch.training.ema import EMA
from flowmatch.training.loop import TrainingInterrupted, TrainResult, resume, train
from flowmatch.training.methods import METHODS, FlowMatching, flow_matching_loss
from flowmatch.training.progress import make_reporter

__all__ = [
    "EMA",
    "METHODS",
    "FlowMatching",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "flow_matching_loss",
    "load_checkpoint",
    "make_reporter",
    "read_run_record",
    "resume",
    "save_checkpoint",
    "train",
]
