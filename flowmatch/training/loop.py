"""The training loop: data -> loss -> optimizer step -> EMA, with checkpoints and resume.

The whole story reads top to bottom in :meth:`Trainer.run`. A run folder is created by
:func:`train` and continued by :func:`resume`; a resumed run ends with the same weights as an
uninterrupted one because the checkpoint holds the optimizer, EMA and RNG states.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from flowmatch.data import DATASETS, get_dataset
from flowmatch.data.logit import LogitTransform
from flowmatch.data.sources import resolve_source_spec
from flowmatch.errors import FlowmatchError
from flowmatch.training.checkpoint import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    atomic_write,
    check_new_run_dir,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_run_record,
    save_checkpoint,
    write_run_record,
)
from flowmatch.training.conditioning import resolve_condition
from flowmatch.training.config import TrainConfig
from flowmatch.training.ema import EMA
from flowmatch.training.methods import METHODS
from flowmatch.training.pairs import chunk_steps, draw_chunk, pair_table
from flowmatch.training.progress import NullReporter, Reporter
from flowmatch.training.schedules import lr_factor

__all__ = ["OPTIMIZERS", "TrainResult", "Trainer", "TrainingInterrupted", "resume", "train"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
STATS_SAMPLES = 100_000  # draws used to estimate the statistics of a built-in generator
STATS_SEED = 2**31 - 1
SMALL_MODEL_PARAMS = 2_000_000  # below this, one CPU thread beats several (measured)


FUSED_DEVICES = ("cpu", "cuda")


def fused_if_supported(device: torch.device) -> dict:
    """``fused=True`` for Adam(W) where PyTorch has the one-kernel update (CPU and CUDA).

    The fused update is the same arithmetic in one kernel instead of ~8 small ops per
    parameter: on a 128x3 MLP it takes a step's optimizer time from ~0.7 ms to ~0.3 ms on one
    CPU thread. It agrees with the per-tensor update to float rounding (~1e-7), so resuming a
    run trained before this default continues it to rounding, not bit for bit.
    """
    return {"fused": True} if device.type in FUSED_DEVICES else {}


class TrainingInterrupted(FlowmatchError):
    """Raised after Ctrl-C, once a checkpoint of the last finished step has been written."""


@dataclass
class TrainResult:
    """What a call to :func:`train` or :func:`resume` did."""

    run_dir: Path
    step: int
    total_steps: int
    loss: float | None
    seconds: float
    cpu_seconds: float = 0.0
    """CPU time of the training steps (this process, all threads): less sensitive than
    ``seconds`` to other jobs sharing the machine."""

    @property
    def complete(self) -> bool:
        return self.step >= self.total_steps


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> None:
    """Scale the gradients by min(1, max_norm / (||g|| + 1e-6)), ||g|| the norm of all of them.

    The same arithmetic as ``torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)``
    in four multi-tensor calls, without its argument handling, which costs more than the
    arithmetic on a small model (~0.1 ms of a ~3.5 ms step of a 128x3 MLP on one CPU thread).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FlowmatchError(f"unknown --device '{name}'; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FlowmatchError("--device cuda was asked for but no CUDA GPU is available; use cpu")
    return device


def apply_threads(cfg: TrainConfig, model: nn.Module, device: torch.device) -> int:
    """Set torch's CPU threads: cfg.threads, or 1 for small models (0 = automatic)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif device.type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        torch.set_num_threads(1)
    return torch.get_num_threads()


def data_statistics(dataset, logit: LogitTransform | None = None) -> tuple[Tensor, Tensor]:
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


def logit_for(cfg: TrainConfig, dataset) -> LogitTransform | None:
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


class Trainer:
    """Holds a run's model, optimizer, EMA and RNG; :meth:`run` trains to ``cfg.steps``."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, record: dict, device: torch.device):
        self.cfg, self.run_dir, self.record, self.device = cfg, Path(run_dir), record, device
        self.method = METHODS[cfg.method]
        self.dataset = get_dataset(cfg.data)
        # conditional when training resolved a condition size into the model config
        self.conditional = bool(cfg.model.num_classes or cfg.model.cond_dim)
        data = record["data"]
        shape = tuple(data["shape"])
        if tuple(getattr(self.dataset, "shape", (self.dataset.dim,))) != shape:
            raise FlowmatchError(
                f"{cfg.data} now has samples of shape "
                f"{tuple(getattr(self.dataset, 'shape', (self.dataset.dim,)))}, "
                f"but the run was trained on shape {shape}"
            )
        mean, std = torch.tensor(data["mean"]), torch.tensor(data["std"])
        with torch.random.fork_rng(devices=[]):  # seeded init, global RNG left untouched
            torch.manual_seed(cfg.seed)
            self.model = self.method.build(cfg, shape, mean, std).to(device)
        if "logit" in data:
            self.model.logit = LogitTransform.from_dict(data["logit"])
        self.threads = apply_threads(cfg, self.model, device)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = OPTIMIZERS[cfg.optimizer](
            self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused_if_supported(device)
        )
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        # exact-OT runs draw and couple the batches of several steps at once (see chunk_steps)
        self.chunk = chunk_steps(cfg, self.conditional)
        self.chunk_pairs: tuple[Tensor, Tensor] | None = None  # (x0, x1), chunk * B rows each
        self.chunk_start, self.chunk_rng = 0, None  # its first step, the generator state then

    def initialize_from(self, run_dir: str | Path) -> None:
        """Start the model and its EMA from another run's EMA weights (reflow, distillation)."""
        tensors, _ = load_checkpoint(Path(run_dir) / CHECKPOINT_FILE)
        weights = _strip(tensors, "ema.")
        try:
            self.model.load_state_dict(weights)
            self.ema.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise FlowmatchError(
                f"--init-from {run_dir}: its weights do not fit this model "
                f"({str(exc).splitlines()[0]}); use the teacher's --model, --width and --depth"
            ) from None

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, loss: float | None) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.ema.model.state_dict().items()}
        opt_tensors, groups = optimizer_to_tensors(self.opt)
        tensors |= opt_tensors
        tensors["rng.train"] = self.generator.get_state()
        meta = {"step": self.step, "ema_updates": self.ema.updates, "param_groups": groups}
        if self.chunk_rng is not None:  # a resume draws the current chunk again from here
            tensors["rng.chunk"] = self.chunk_rng
            meta["chunk_start"] = self.chunk_start
        meta["loss"] = loss
        save_checkpoint(self.run_dir / CHECKPOINT_FILE, tensors, meta)

    def restore(self) -> None:
        tensors, meta = load_checkpoint(self.run_dir / CHECKPOINT_FILE)
        try:
            self.model.load_state_dict(_strip(tensors, "model."))
            self.ema.model.load_state_dict(_strip(tensors, "ema."))
            optimizer_from_tensors(self.opt, tensors, meta["param_groups"])
            self.generator.set_state(tensors["rng.train"])
            if "rng.chunk" in tensors:
                self.chunk_rng, self.chunk_start = tensors["rng.chunk"], int(meta["chunk_start"])
        except (KeyError, RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise FlowmatchError(
                f"checkpoint in {self.run_dir} does not match its config.json ({first})"
            ) from None
        self.step, self.ema.updates = int(meta["step"]), int(meta["ema_updates"])
        _truncate_metrics(self.run_dir / METRICS_FILE, self.step)

    def chunk_batch(self, to_units: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
        """This step's (x0, x1), (B, ...) each, from the chunk of pairs begun at
        ``chunk_start``; a new chunk is drawn every ``chunk`` steps.

        A run resumed inside a chunk draws it again from the generator state saved with it,
        so it goes on exactly as an uninterrupted run.
        """
        i = self.step - self.chunk_start
        again = self.chunk_pairs is None and self.chunk_rng is not None and 0 <= i < self.chunk
        if again:
            now = self.generator.get_state()
            self.generator.set_state(self.chunk_rng)
        elif self.chunk_pairs is None or not 0 <= i < self.chunk:
            self.chunk_start, self.chunk_rng, i = self.step, self.generator.get_state(), 0
        if again or i == 0:
            self.chunk_pairs = draw_chunk(
                self.model, self.dataset, self.generator, self.cfg, self.chunk, to_units
            )
        if again:
            self.generator.set_state(now)
        b = self.cfg.batch_size
        x0, x1 = self.chunk_pairs
        return x0[i * b : (i + 1) * b], x1[i * b : (i + 1) * b]

    # -- the loop ---------------------------------------------------------------------------
    def run(
        self,
        reporter: Reporter | None = None,
        stop_after: int | None = None,
        max_seconds: float | None = None,
    ) -> TrainResult:
        cfg, model, opt = self.cfg, self.model, self.opt
        # mean 0, std 1 (--no-standardize) and no logit map: the data are in the model's units
        plain = getattr(model, "logit", None) is None and bool(
            (model.data_mean == 0).all() and (model.data_std == 1).all()
        )
        to_units = (lambda x: x) if plain else model.standardize
        reporter = reporter or NullReporter()
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        reporter.start(cfg.steps, self.step)
        loss_sum, n_sum, last_loss = torch.zeros((), device=self.device), 0, None
        t_start = t_log = time.perf_counter()
        cpu_start = time.process_time()
        log = (self.run_dir / METRICS_FILE).open("a")
        model.train()
        try:
            while self.step < end:
                lr = cfg.lr * lr_factor(
                    self.step, cfg.steps, cfg.warmup_steps, cfg.lr_decay, cfg.min_lr_ratio
                )
                for group in opt.param_groups:
                    group["lr"] = lr
                if self.chunk > 1:  # pairs drawn and coupled ahead, for several steps
                    x0, x1 = self.chunk_batch(to_units)
                    loss = self.method.loss(model, x1, self.generator, cfg, x0=x0)
                else:
                    x1, cond = self.dataset.sample_batch(cfg.batch_size, self.generator)
                    x1 = to_units(x1.to(self.device))
                    if self.conditional:  # (B,) labels or (B, d) vectors drawn with x1
                        cond = cond.to(self.device)
                        loss = self.method.loss(model, x1, self.generator, cfg, cond=cond)
                    else:
                        loss = self.method.loss(model, x1, self.generator, cfg)
                for p in self.params:  # opt.zero_grad(set_to_none=True) without its hooks
                    p.grad = None
                loss.backward()
                if cfg.grad_clip > 0:
                    clip_grad_norm(self.params, cfg.grad_clip)
                opt.step()
                self.ema.update()
                self.step += 1
                if max_seconds is not None and time.perf_counter() - t_start >= max_seconds:
                    end = self.step  # out of time: log, checkpoint and stop at this step
                loss_sum += loss.detach()
                n_sum += 1
                if self.step % cfg.log_every == 0 or self.step == end:
                    now = time.perf_counter()
                    last_loss = (loss_sum / n_sum).item()  # the only host sync of an interval
                    if not math.isfinite(last_loss):
                        raise FlowmatchError(
                            f"training diverged (loss {last_loss} at step {self.step}); "
                            "lower --lr or raise --grad-clip; the last checkpoint is kept"
                        )
                    row = {
                        "step": self.step,
                        "loss": last_loss,
                        "lr": lr,
                        "steps_per_s": n_sum / max(now - t_log, 1e-9),
                        "elapsed_s": now - t_start,
                    }
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    reporter.log(self.step, row)
                    loss_sum.zero_()
                    n_sum, t_log = 0, now
                if self.step % cfg.checkpoint_every == 0 or self.step == end:
                    self.save(last_loss)
        except KeyboardInterrupt:
            self.save(last_loss)
            raise TrainingInterrupted(
                f"interrupted at step {self.step}/{cfg.steps}; "
                f"continue with: flowmatch train --resume {self.run_dir}"
            ) from None
        finally:
            log.close()
            reporter.close()
        return TrainResult(
            self.run_dir,
            self.step,
            cfg.steps,
            last_loss,
            time.perf_counter() - t_start,
            time.process_time() - cpu_start,
        )


def _strip(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint, so a resumed log has no duplicates."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    atomic_write(path, "".join(ln + "\n" for ln in keep).encode())


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    max_seconds: float | None = None,
) -> TrainResult:
    """Start a new run in ``run_dir`` (which must not hold anything) and train it.

    Args:
        cfg: the run's configuration.
        run_dir: the folder to create.
        reporter: progress display; silent by default.
        stop_after: stop after this many steps, leaving a resumable run (for time-boxed jobs).
        max_seconds: stop once this much wall-clock time has gone into training steps,
            leaving a resumable run (equal time budgets in benchmarks).

    Returns:
        What was done.
    """
    cfg.validate()
    for name, registry, flag in (
        (cfg.method, METHODS, "--method"),
        (cfg.optimizer, OPTIMIZERS, "--optimizer"),
    ):
        if name not in registry:
            raise FlowmatchError(f"unknown {flag} '{name}'; choose one of: {', '.join(registry)}")
    run_dir = Path(run_dir)
    check_new_run_dir(run_dir)
    device = resolve_device(cfg.device)
    dataset = get_dataset(cfg.data)
    logit = logit_for(cfg, dataset)
    mean, std = data_statistics(dataset, logit)
    if not cfg.standardize:  # the network sees the data (and a data source) in their own units
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    shape = list(getattr(dataset, "shape", (dataset.dim,)))
    condition = resolve_condition(cfg, dataset, METHODS[cfg.method])
    if cfg.data not in DATASETS:  # a file: keep its absolute path so resume works anywhere
        cfg.data = str(Path(cfg.data).resolve())
    cfg.source = resolve_source_spec(cfg.source)
    for name in ("pairs", "init_from"):  # files of other runs, by absolute path too
        if getattr(cfg, name):
            setattr(cfg, name, str(Path(getattr(cfg, name)).resolve()))
    if cfg.pairs:
        table = pair_table(cfg.pairs)
        if table.x1[0].numel() != int(torch.tensor(shape).prod()):
            raise FlowmatchError(
                f"--pairs {cfg.pairs} holds points of {table.x1[0].numel()} features but "
                f"{cfg.data} has {int(torch.tensor(shape).prod())}"
            )
    record = {
        "config": cfg.to_dict(),
        "data": {"shape": shape, "mean": mean.tolist(), "std": std.tolist()},
    }
    if logit is not None:
        record["data"]["logit"] = logit.to_dict()
    if condition is not None:
        record["data"]["condition"] = condition.to_dict()
    trainer = Trainer(cfg, run_dir, record, device)  # builds the model: bad options fail here
    if cfg.init_from:
        trainer.initialize_from(cfg.init_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_record(run_dir, record)
    return trainer.run(reporter, stop_after, max_seconds)


def resume(
    run_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
    device: str | None = None,
    max_seconds: float | None = None,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint to its configured steps."""
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    cfg = TrainConfig.from_dict(record.get("config"))
    if device is not None:
        cfg.device = device
    trainer = Trainer(cfg, run_dir, record, resolve_device(cfg.device))
    if (run_dir / CHECKPOINT_FILE).exists():
        trainer.restore()
    elif cfg.init_from:
        trainer.initialize_from(cfg.init_from)
    return trainer.run(reporter, stop_after, max_seconds)
