"""Stop signals and divergence: a checkpoint is always of a finished step, finite, and kept."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.training import TrainingInterrupted, load_checkpoint, resume, train
from flowmatch.training.loop import TrainingDiverged
from flowmatch.training.progress import NullReporter
from tests.training.interrupt_worker import INTERRUPTED, SIGNALS

ROOT = Path(__file__).resolve().parents[2]
TINY = dataclasses.replace(INTERRUPTED, steps=60, checkpoint_every=25, log_every=10)


def assert_same_checkpoint(a: Path, b: Path) -> None:
    ta, ma = load_checkpoint(a / "checkpoint.safetensors")
    tb, mb = load_checkpoint(b / "checkpoint.safetensors")
    assert ta.keys() == tb.keys() and ma["step"] == mb["step"]
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key


def logged_steps(run: Path) -> list[int]:
    return [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").open()]


class SignalAt(NullReporter):
    """Sends ``signum`` to this process when the loop logs ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def log(self, step, metrics):
        if step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_checkpoints_the_last_finished_step(tmp_path, signum):
    train(TINY, tmp_path / "full")
    with pytest.raises(TrainingInterrupted, match=signal.Signals(signum).name) as exc_info:
        train(TINY, tmp_path / "part", reporter=SignalAt(30, signum))
    assert "\n" not in str(exc_info.value)
    _, meta = load_checkpoint(tmp_path / "part" / "checkpoint.safetensors")
    assert meta["step"] == 30  # not a checkpoint step: written because of the signal
    assert resume(tmp_path / "part").complete
    assert_same_checkpoint(tmp_path / "full", tmp_path / "part")
    assert logged_steps(tmp_path / "part") == [10, 20, 30, 40, 50, 60]


def test_the_previous_signal_handlers_come_back(tmp_path):
    def mine(signum, frame):
        pass

    old = signal.signal(signal.SIGTERM, mine)
    try:
        train(dataclasses.replace(TINY, steps=5), tmp_path / "run")
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, old)


def test_an_ignored_signal_stays_ignored(tmp_path):
    """Under ``nohup`` SIGHUP is ignored: a closed terminal must not stop the run."""
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        result = train(TINY, tmp_path / "run", reporter=SignalAt(30, signal.SIGHUP))
        assert result.complete
    finally:
        signal.signal(signal.SIGHUP, old)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_leaves_nothing(tmp_path, monkeypatch, signum):
    from flowmatch.training import start

    def write_then_signal(run_dir, record):
        write_run_record(run_dir, record)
        os.kill(os.getpid(), signum)

    write_run_record = start.write_run_record
    monkeypatch.setattr(start, "write_run_record", write_then_signal)
    with pytest.raises(KeyboardInterrupt):
        train(TINY, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # so the same --out works next time
    monkeypatch.undo()
    assert train(dataclasses.replace(TINY, steps=5), tmp_path / "run").complete


def test_stop_signals_at_random_moments_lose_nothing(tmp_path):
    """A worker process trains while signals come at random moments (start-up, loop, between
    attempts); each run, resumed to its end, equals the uninterrupted one bit for bit."""
    train(INTERRUPTED, tmp_path / "full")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.training.interrupt_worker"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()

    def send(command: str) -> None:
        proc.stdin.write(command + "\n")
        proc.stdin.flush()

    def read() -> str:
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read()  # the worker died: show why
        return line

    def outcome() -> str:
        line = read()
        while line == "loop":
            line = read()
        return line

    outcomes = []
    try:
        for seed in range(3):
            rng, run = random.Random(seed), tmp_path / f"run{seed}"
            signals = [*rng.sample(SIGNALS, len(SIGNALS)), rng.choice(SIGNALS)]
            for in_loop, signum in zip((False, True, True, False), signals, strict=True):
                send(f"go {run}")
                assert read() == "started"
                if in_loop:
                    assert read() == "loop"
                    threading.Event().wait(rng.uniform(0.0, 0.2))
                else:  # start-up (validation, data statistics, model, lock, record) or later
                    threading.Event().wait(rng.uniform(0.0, 0.1))
                proc.send_signal(signum)
                outcomes.append((in_loop, outcome()))
            send(f"finish {run}")
            assert outcome() == f"done {INTERRUPTED.steps}"
            assert_same_checkpoint(tmp_path / "full", run)
            steps = logged_steps(run)
            assert steps == sorted(set(steps)) and steps[-1] == INTERRUPTED.steps
        send("quit")
        assert proc.wait(timeout=60) == 0
    finally:
        watchdog.cancel()
        proc.kill()
    assert any(o.startswith("interrupted") for _, o in outcomes), outcomes
    assert all(o.split()[0] in ("interrupted", "done") for in_loop, o in outcomes if in_loop)


def diverge_at(step: int):
    """An optimizer step that poisons a weight with NaN from ``step`` on (the loss itself is
    only looked at every --log-every steps)."""
    from flowmatch.training import loop

    real, count = loop.optimizer_step, [0]

    def step_fn(loss, params, optimizer, grad_clip, ema, scaler=None):
        real(loss, params, optimizer, grad_clip, ema, scaler)
        count[0] += 1
        if count[0] >= step:
            with torch.no_grad():
                params[0].fill_(float("nan"))

    return step_fn


def test_divergence_between_logs_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from flowmatch.training import loop

    cfg = dataclasses.replace(TINY, log_every=1000, checkpoint_every=10, steps=40)
    train(cfg, tmp_path / "run", stop_after=10)
    before = (tmp_path / "run" / "checkpoint.safetensors").read_bytes()
    monkeypatch.setattr(loop, "optimizer_step", diverge_at(5))  # step 15 of the run
    with pytest.raises(TrainingDiverged) as exc_info:
        resume(tmp_path / "run")
    message = str(exc_info.value)
    assert "\n" not in message and "step 20" in message
    assert "the last good checkpoint, of step 10, is kept" in message
    assert "lower --lr or set/lower --grad-clip" in message and "raise" not in message
    assert (tmp_path / "run" / "checkpoint.safetensors").read_bytes() == before


def test_divergence_before_any_checkpoint_leaves_no_folder(tmp_path):
    cfg = dataclasses.replace(TINY, lr=1e30, grad_clip=0.0, steps=40, checkpoint_every=10)
    with pytest.raises(TrainingDiverged) as exc_info:
        train(cfg, tmp_path / "run")
    message = str(exc_info.value)
    assert "\n" not in message and "no checkpoint was written" in message
    assert "the run folder was removed" in message
    assert not (tmp_path / "run").exists()
    assert isinstance(exc_info.value, FlowmatchError)
