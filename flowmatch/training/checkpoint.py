"""The run folder: a JSON record of the run and an atomic, weights-only checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.storage import atomic_write

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "METRICS_FILE",
    "RUN_FORMAT",
    "TIME_CONVENTION",
    "atomic_write",
    "check_new_run_dir",
    "load_checkpoint",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "read_run_record",
    "save_checkpoint",
    "with_prefix",
    "write_run_record",
]

RUN_FORMAT = "flowmatch-run"
CHECKPOINT_FORMAT = "flowmatch-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
METRICS_FILE = "metrics.jsonl"
TIME_CONVENTION = "t=0 is noise N(0, I), t=1 is data"


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to start a run in a folder that already holds anything."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        raise FlowmatchError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} "
            "or pick a new --out folder"
        )
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise FlowmatchError(f"{run_dir} exists and is not an empty folder; pick a new --out")


def write_run_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Write config.json with the format tag, version and time convention added.

    A run folder holds
      config.json             format tag, version, time convention, resolved config, data stats
      checkpoint.safetensors  weights, EMA, optimizer and generator states (see
                              :class:`~flowmatch.training.state.TrainState`); step in the metadata
      metrics.jsonl           one JSON object per logged step
    Loading reads JSON and safetensors only, so it never executes code."""
    from flowmatch._version import __version__

    full = {
        "format": RUN_FORMAT,
        "format_version": FORMAT_VERSION,
        "flowmatch_version": __version__,
        "time_convention": TIME_CONVENTION,
        **record,
    }
    atomic_write(Path(run_dir) / CONFIG_FILE, json.dumps(full, indent=2).encode())


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """Read and check config.json of a run folder."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise FlowmatchError(f"run folder {run_dir} does not exist; train one with flowmatch train")
    if not path.is_file():
        raise FlowmatchError(f"{run_dir} is not a flowmatch run (no {CONFIG_FILE})")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FlowmatchError(
            f"{path} is not valid JSON ({exc}); the run folder is corrupt"
        ) from None
    if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
        raise FlowmatchError(f"{path} was not written by flowmatch (no '{RUN_FORMAT}' tag)")
    if record.get("format_version") != FORMAT_VERSION:
        raise FlowmatchError(
            f"{path} has run format version {record.get('format_version')}; "
            f"this flowmatch reads version {FORMAT_VERSION}"
        )
    return record


def save_checkpoint(path: Path, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Atomically write tensors (made contiguous, on the CPU) and JSON metadata to safetensors."""
    from safetensors.torch import save

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"format": CHECKPOINT_FORMAT, "meta": json.dumps(meta)}
    atomic_write(Path(path), save(flat, metadata=header))


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; reject corrupt or foreign files."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FlowmatchError(f"no checkpoint at {path}; the run has not saved one yet")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("format") != CHECKPOINT_FORMAT:
                raise FlowmatchError(f"{path} is a safetensors file but not a flowmatch checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = json.loads(header["meta"])
    except FlowmatchError:
        raise
    except Exception as exc:  # safetensors raises its own error types for damaged files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FlowmatchError(f"{path} is corrupt or not a checkpoint ({first})") from None
    return tensors, meta


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], list]:
    """Split an optimizer's state into tensors (for safetensors) and JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
    return tensors, sd["param_groups"]


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], groups: list
) -> None:
    """Inverse of :func:`optimizer_to_tensors`."""
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def with_prefix(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of a checkpoint under ``prefix`` ("model.", "ema."), with it removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
