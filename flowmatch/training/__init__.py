"""Training: configs, batches, methods (losses), the loop, EMA, checkpoints and progress."""

from flowmatch.training.batches import Batch, BatchSource, batch_source
from flowmatch.training.checkpoint import load_checkpoint, read_run_record, save_checkpoint
from flowmatch.training.config import TrainConfig
from flowmatch.training.ema import EMA
from flowmatch.training.energy import EnergyFit, fit_energy, save_energy_fit
from flowmatch.training.lock import RunLocked
from flowmatch.training.loop import TrainingDiverged, TrainingInterrupted, TrainResult
from flowmatch.training.methods import METHODS, FlowMatching, Method, flow_matching_loss
from flowmatch.training.optim import optimizer_step
from flowmatch.training.presets import PRESETS, Preset, preset_config
from flowmatch.training.progress import make_reporter
from flowmatch.training.reflow import ReflowResult, generate_pairs, reflow
from flowmatch.training.start import resume, train
from flowmatch.training.state import TrainState

__all__ = [
    "EMA",
    "METHODS",
    "PRESETS",
    "Batch",
    "BatchSource",
    "EnergyFit",
    "FlowMatching",
    "Method",
    "Preset",
    "ReflowResult",
    "RunLocked",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "TrainingInterrupted",
    "batch_source",
    "fit_energy",
    "flow_matching_loss",
    "generate_pairs",
    "load_checkpoint",
    "make_reporter",
    "optimizer_step",
    "preset_config",
    "read_run_record",
    "reflow",
    "resume",
    "save_checkpoint",
    "save_energy_fit",
    "train",
]
