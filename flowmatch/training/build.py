"""Setting up a run: its resolved config and record, then its model, optimizer, EMA and batches."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from flowmatch.data import DATASETS, Dataset
from flowmatch.data.logit import LogitTransform
from flowmatch.data.sources import resolve_source_spec
from flowmatch.errors import FlowmatchError, check_memory
from flowmatch.flows.base import Flow
from flowmatch.models import build_model
from flowmatch.training.batches import batch_source, chunk_steps
from flowmatch.training.conditioning import resolve_condition
from flowmatch.training.config import TrainConfig
from flowmatch.training.distributed import Job, rank_seed
from flowmatch.training.ema import EMA
from flowmatch.training.fingerprint import run_fingerprints
from flowmatch.training.methods import METHODS
from flowmatch.training.optim import make_optimizer
from flowmatch.training.pairs import pair_table
from flowmatch.training.precision import Precision, compile_velocity
from flowmatch.training.state import TrainState

__all__ = [
    "apply_threads",
    "build_flow",
    "build_state",
    "check_size",
    "count_parameters",
    "data_statistics",
    "logit_for",
    "prepare_run",
]

STATS_SAMPLES = 100_000  # draws used to estimate the statistics of a built-in generator
STATS_SEED = 2**31 - 1
SMALL_MODEL_PARAMS = 2_000_000  # below this, one CPU thread beats several (measured)


def apply_threads(
    cfg: TrainConfig, model: nn.Module, device: torch.device, processes: int = 1
) -> int:
    """Set torch's CPU threads: cfg.threads, or automatically (``--threads 0``): 1 for small
    models, else the cores shared out among the ``processes`` of this node."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif device.type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        torch.set_num_threads(1)
    elif device.type == "cpu" and processes > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes))
    return torch.get_num_threads()


def data_statistics(dataset: Dataset, logit: LogitTransform | None = None) -> tuple[Tensor, Tensor]:
    """Per-feature mean and std of the training data (of many draws, for a generator), after
    the logit transform if one is given."""
    from flowmatch.data import Standardizer

    train = getattr(dataset, "train_data", None)
    if train is None:
        train = dataset.sample(STATS_SAMPLES, torch.Generator().manual_seed(STATS_SEED))
    if logit is not None:
        train = logit.forward(train)
    per_feature = getattr(dataset, "per_feature_standardization", True)  # images: one scale
    st = Standardizer.fit(train.reshape(train.shape[0], -1), per_feature=per_feature)
    return st.mean, st.std


def logit_for(cfg: TrainConfig, dataset: Dataset) -> LogitTransform | None:
    """The logit transform of ``--logit ALPHA`` over the data's range (None for 0)."""
    if not cfg.logit:
        return None
    q = getattr(dataset, "quantization", None)
    if q is None:
        raise FlowmatchError(
            f"--logit needs data with a known bounded range (a quantized set such as digits); "
            f"{cfg.data} has none, so drop --logit"
        )
    return LogitTransform(q.low, q.high, cfg.logit)


def _sample_shape(dataset: Dataset) -> tuple[int, ...]:
    return tuple(getattr(dataset, "shape", (dataset.dim,)))


def prepare_run(
    cfg: TrainConfig, dataset: Dataset | None = None
) -> tuple[TrainConfig, dict[str, Any]]:
    """The resolved config and the record (``config.json``) of a new run of ``cfg``.

    The resolved config is a new object (``cfg`` is left as it is) with files of data,
    source, pairs and teacher run as absolute paths, so the run resumes from any folder, and
    the data's condition size in its model config. The record holds it with the statistics
    of the data: shape, mean and std (after the logit map, if any), and the condition spec.

    Args:
        cfg: a validated configuration.
        dataset: ``cfg.dataset()``, if the caller has built it already.

    Returns:
        ``(resolved config, record)``.
    """
    dataset = dataset if dataset is not None else cfg.dataset()
    logit = logit_for(cfg, dataset)
    mean, std = data_statistics(dataset, logit)
    if not cfg.standardize:  # the network sees the data (and a data source) in their own units
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    shape = list(_sample_shape(dataset))
    cfg, condition = resolve_condition(cfg, dataset, METHODS[cfg.method])
    paths: dict[str, Any] = {"source": resolve_source_spec(cfg.source)}
    if cfg.data not in DATASETS:  # a file
        paths["data"] = str(Path(cfg.data).resolve())
    for name in ("pairs", "init_from"):  # files of other runs
        if getattr(cfg, name):
            paths[name] = str(Path(getattr(cfg, name)).resolve())
    cfg = dataclasses.replace(cfg, **paths)
    if cfg.pairs:
        table, dim = pair_table(cfg.pairs), math.prod(shape)
        if table.x1[0].numel() != dim:
            raise FlowmatchError(
                f"--pairs {cfg.pairs} holds points of {table.x1[0].numel()} features but "
                f"{cfg.data} has {dim}"
            )
    record = {
        "config": cfg.to_dict(),
        "data": {"shape": shape, "mean": mean.tolist(), "std": std.tolist()},
    }
    if logit is not None:
        record["data"]["logit"] = logit.to_dict()
    if condition is not None:
        record["data"]["condition"] = condition.to_dict()
    fingerprints = run_fingerprints(record["config"])
    if fingerprints:  # a resume refuses files that changed since
        record["fingerprints"] = fingerprints
    return cfg, record


def build_flow(cfg: TrainConfig, data: dict[str, Any]) -> Flow:
    """The run's flow, untrained, from its config and the ``data`` entry of its record.

    Args:
        cfg: the run's configuration; ``cfg.method`` says which kind of flow.
        data: the record's sample shape, statistics and (if any) logit map.
    """
    shape = tuple(int(s) for s in data["shape"])
    mean = torch.tensor(data["mean"], dtype=torch.float32)
    std = torch.tensor(data["std"], dtype=torch.float32)
    flow = METHODS[cfg.method](cfg).build(shape, mean, std)
    if "logit" in data:
        flow.logit = LogitTransform.from_dict(data["logit"])
    return flow


def count_parameters(cfg: TrainConfig, shape: tuple[int, ...]) -> int:
    """The trained parameters of the run's model, counted without allocating it.

    Planar stacks and MLPs are counted by formula (building on the meta device would import
    sympy, over a second of every start); other networks are built on the meta device.

    Example:
        >>> from flowmatch.models import ModelConfig
        >>> cfg = TrainConfig(model=ModelConfig(width=16, depth=2))
        >>> count_parameters(cfg, (2,)) == sum(p.numel() for p in build_model(cfg.model, (2,))
        ...     .parameters())
        True
    """
    dim, m = math.prod(shape), cfg.model
    if cfg.method == "planar":  # K planar layers (w, u, b) and the elementwise affine layer
        return cfg.layers * (2 * dim + 1) + 2 * dim
    if m.name == "mlp" and not m.condition:  # spec'd encoders are counted by building them
        conditional = bool(m.num_classes or m.cond_dim)
        fan_in = dim + 2 * m.input_features + m.time_embed_dim
        fan_in += m.cond_embed_dim if conditional else 0
        hidden = (fan_in + 1) * m.width + (m.depth - 1) * (m.width + 1) * m.width
        embedding = (m.num_classes + m.cond_dim + 1) * m.cond_embed_dim if conditional else 0
        return hidden + (m.width + 1) * dim + embedding
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(m, shape).parameters())


def check_size(
    cfg: TrainConfig,
    data: dict[str, Any],
    device: torch.device,
    training: bool = True,
    batch_size: int | None = None,
) -> None:
    """Refuse, before allocating anything, a run whose model or batches cannot fit on
    ``device``: the network is built on the meta device to count its parameters, and a
    batch's activations are estimated from the architecture.

    Args:
        cfg: the run's configuration.
        data: the record's sample shape and statistics.
        device: where the run would live.
        training: count what training adds (EMA, gradients, optimizer moments, a batch's
            activations); else the weights alone (loading a run).
        batch_size: rows of a batch on this device (default ``cfg.batch_size``; one process
            of a job of W holds ``cfg.batch_size / W``).
    """
    shape = tuple(int(s) for s in data["shape"])
    dim, m = math.prod(shape), cfg.model
    n_params = count_parameters(cfg, shape)
    if not training:
        check_memory(4 * n_params, f"a model of {n_params:,} parameters", device)
        return
    if cfg.method == "planar":
        hidden = cfg.layers * dim
    elif m.name == "unet":
        hidden = 8 * m.channels * (dim // shape[0]) * (m.levels + 1)
    else:
        hidden = m.width * m.depth + 2 * m.input_features + m.time_embed_dim
    per_sample = 8 * dim + 4 * hidden  # x0, x1, xt, ut, v with gradients; kept activations
    if cfg.method == "cnf":  # the solver's steps (and stages) are all kept for backward
        per_sample *= 4 * cfg.cnf_steps
    batch_size = batch_size or cfg.batch_size
    rows = batch_size * chunk_steps(cfg, m.is_conditional(), batch_size)
    nbytes = 4 * (5 * n_params + rows * per_sample)  # weights, EMA, grads, 2 Adam moments
    if cfg.coupling != "independent":  # the OT cost matrices, in float64
        block = cfg.ot_batch if 0 < cfg.ot_batch < batch_size else batch_size
        nbytes += 8 * rows * block
    check_memory(
        nbytes,
        f"training {n_params:,} parameters on batches of {batch_size} samples of "
        f"shape {shape} (--batch-size, --width, --depth)",
        device,
    )


def build_state(
    cfg: TrainConfig,
    record: dict[str, Any],
    device: torch.device,
    job: Job | None = None,
    dataset: Dataset | None = None,
) -> TrainState:
    """The fresh (step 0) training state of a run: model, EMA, optimizer and batch source.

    The model is initialized from ``cfg.seed`` (torch's global generator is left as it was),
    the same on every process of a job, and the batch source draws this process's share of
    the batch from a generator seeded with :func:`~flowmatch.training.distributed.rank_seed`
    (``cfg.seed`` itself in a job of one). Torch's CPU threads are set by
    :func:`apply_threads`.

    Args:
        cfg: the run's resolved configuration.
        record: the run's record; its ``data`` entry gives shape, statistics and logit map.
        device: where to train.
        job: this process's place in a multi-process job (default: the only process).
        dataset: ``cfg.dataset()``, if the caller has built it already (a new run's
            :func:`prepare_run` did).

    Returns:
        The state, ready to train or to :meth:`~TrainState.load` a checkpoint into.
    """
    job = job or Job()
    method = METHODS[cfg.method](cfg)
    data = record["data"]
    batch_size = job.local_batch(cfg.batch_size)
    check_size(cfg, data, device, batch_size=batch_size)  # before anything is allocated
    precision = Precision(cfg.precision, device)  # refuses what the device cannot do
    dataset = dataset if dataset is not None else cfg.dataset()
    shape = tuple(data["shape"])
    if _sample_shape(dataset) != shape:
        raise FlowmatchError(
            f"{cfg.data} now has samples of shape {_sample_shape(dataset)}, "
            f"but the run was trained on shape {shape}"
        )
    with torch.random.fork_rng(devices=[]):  # seeded init, global RNG left untouched
        torch.manual_seed(cfg.seed)
        model = build_flow(cfg, data).to(device)
    apply_threads(cfg, model, device, job.local_world_size)
    ema = EMA(model, cfg.ema_decay)
    if cfg.compile:  # after the EMA's deep copy, which stays eager (sampling is never compiled)
        compile_velocity(model, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, params, device)
    source = batch_source(
        cfg,
        dataset,
        model,
        torch.Generator().manual_seed(rank_seed(cfg.seed, job.rank)),
        coupled=method.coupled,
        conditional=cfg.model.is_conditional(),
        batch_size=batch_size,
    )
    return TrainState(model, ema, optimizer, source, precision=precision)
