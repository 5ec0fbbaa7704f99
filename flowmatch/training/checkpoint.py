"""The run folder: a JSON record of the run and an atomic, weights-only checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowmatch.errors import FlowmatchError
from flowmatch.storage import (
    StorageError,
    atomic_write,
    dangling_symlink,
    os_error_reason,
    temp_files,
    write_file,
)
from flowmatch.training.config import TrainConfig
from flowmatch.training.lock import LOCK_FILE

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "METRICS_FILE",
    "RUN_FORMAT",
    "TIME_CONVENTION",
    "atomic_write",
    "check_new_run_dir",
    "check_weights",
    "error_summary",
    "load_checkpoint",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "read_run_record",
    "run_config",
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
    """Refuse to start a run in a folder that already holds anything.

    The lock file and the temporary files of a killed write do not count: a run that was
    killed before it wrote its record left nothing to keep.
    """
    run_dir = Path(run_dir)
    target = dangling_symlink(run_dir)
    if target is not None:
        raise FlowmatchError(
            f"{run_dir} is a symlink to {target}, which does not exist; create it or pick "
            "another --out"
        )
    if (run_dir / CONFIG_FILE).exists():
        raise FlowmatchError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} "
            "or pick a new --out folder"
        )
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise FlowmatchError(f"{run_dir} exists and is not a folder; pick a new --out")
    try:
        left = {p.name for p in run_dir.iterdir()} - {LOCK_FILE}
    except OSError as exc:
        raise StorageError(f"cannot read {run_dir}: {os_error_reason(exc, run_dir)}") from None
    if left - {p.name for p in temp_files(run_dir)}:
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
    path = Path(run_dir) / CONFIG_FILE
    data = json.dumps(full, indent=2).encode()
    write_file(path, data)


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """Read and check config.json of a run folder: its tags and its ``data`` entry.

    Raises:
        FlowmatchError: one line for a missing, damaged or foreign record.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    for p in (run_dir, path):
        target = dangling_symlink(p)
        if target is not None:
            raise FlowmatchError(f"{p} is a symlink to {target}, which does not exist")
    if not run_dir.is_dir():
        raise FlowmatchError(f"run folder {run_dir} does not exist; train one with flowmatch train")
    if not path.is_file():
        raise FlowmatchError(f"{run_dir} is not a flowmatch run (no {CONFIG_FILE})")
    try:
        record = json.loads(path.read_bytes())
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {os_error_reason(exc, path)}") from None
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
    _check_data_entry(record.get("data"), path)
    return record


def _check_data_entry(data: Any, path: Path) -> None:
    """The record's ``data``: a sample shape of positive integers and finite statistics."""
    if not isinstance(data, dict):
        raise FlowmatchError(f"{path}: 'data' is not a JSON object; the run folder is corrupt")
    shape = data.get("shape")
    if not (
        isinstance(shape, list)
        and 1 <= len(shape) <= 8
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
    ):
        raise FlowmatchError(
            f"{path}: data shape must be a list of positive integers, got {shape!r}"
        )
    for name in ("mean", "std"):
        values = data.get(name)
        if not (
            isinstance(values, list)
            and 1 <= len(values) <= math.prod(shape)
            and all(_finite_number(v) for v in values)
        ):
            raise FlowmatchError(f"{path}: data {name} must be a list of finite numbers")
    if not all(v > 0 for v in data["std"]):
        raise FlowmatchError(f"{path}: data std must be > 0")


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def run_config(record: dict[str, Any], run_dir: Path) -> TrainConfig:
    """The config of a run's record, checked as :meth:`TrainConfig.from_dict` does; its
    errors name the file."""
    try:
        return TrainConfig.from_dict(record.get("config"))
    except FlowmatchError as exc:
        raise FlowmatchError(f"{Path(run_dir) / CONFIG_FILE}: {exc}") from None


def save_checkpoint(path: Path, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Atomically write tensors (made contiguous, on the CPU) and JSON metadata to safetensors."""
    from safetensors.torch import save

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"format": CHECKPOINT_FORMAT, "meta": json.dumps(meta)}
    data = save(flat, metadata=header)
    write_file(Path(path), data)


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; reject corrupt or foreign files."""
    from safetensors import safe_open

    path = Path(path)
    target = dangling_symlink(path)
    if target is not None:
        raise FlowmatchError(f"{path} is a symlink to {target}, which does not exist")
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
        first = error_summary(exc)
        raise FlowmatchError(
            f"{path} is corrupt or not a checkpoint ({first}); restore it from a copy or train "
            "the run again"
        ) from None
    _check_meta(meta, path)
    return tensors, meta


def _check_meta(meta: Any, path: Path) -> None:
    """The checkpoint's JSON metadata: an object whose counts are integers >= 0."""
    if not isinstance(meta, dict):
        raise FlowmatchError(f"{path}: its metadata is not a JSON object; the file is corrupt")
    for key in ("step", "ema_updates", "chunk_start"):
        value = meta.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FlowmatchError(
                f"{path}: metadata {key} must be an integer >= 0, got {value!r}; "
                "the file is corrupt"
            )
    if not isinstance(meta.get("param_groups", []), list):
        raise FlowmatchError(f"{path}: metadata param_groups is not a list; the file is corrupt")


def check_weights(
    tensors: dict[str, Tensor], expected: dict[str, Tensor], prefix: str, path: Path
) -> None:
    """Refuse checkpoint entries under ``prefix`` whose dtype differs from the model's or whose
    values are not finite (shapes and names are load_state_dict's to check).

    Args:
        tensors: the checkpoint's tensors.
        expected: the model's state dict, whose dtypes the entries must have.
        prefix: ``"model."``, ``"ema."``.
        path: the checkpoint, for the message.
    """
    for name, want in expected.items():
        got = tensors.get(prefix + name)
        if got is None:
            continue
        if got.dtype != want.dtype:
            raise FlowmatchError(
                f"{path}: {prefix}{name} has dtype {got.dtype}, but the model's is {want.dtype}; "
                "the file is corrupt"
            )
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise FlowmatchError(f"{path}: {prefix}{name} holds NaN or Inf; the file is corrupt")


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


def error_summary(exc: BaseException) -> str:
    r"""The first informative line of an error (torch's load_state_dict opens with a header).

    Example:
        >>> error_summary(RuntimeError("Error(s) in loading:\n\tsize mismatch for w: ..."))
        'size mismatch for w: ...'
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.endswith(":")]
    return (useful or lines or [type(exc).__name__])[0]
