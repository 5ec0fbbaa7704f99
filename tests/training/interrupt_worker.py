"""A process that trains runs on command while its parent sends it stop signals.

Commands on stdin, one a line:
  ``go RUN``      train RUN (or resume it if it has a record); prints ``started`` first,
                  ``loop`` when the training loop starts, then how the attempt ended:
                  ``interrupted STEP``, ``startup`` (a KeyboardInterrupt before or after the
                  loop) or ``done STEP``
  ``finish RUN``  resume RUN to the end with the stop signals ignored; prints ``done STEP``
  ``quit``
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from flowmatch.models import ModelConfig
from flowmatch.training import TrainConfig, TrainingInterrupted, load_checkpoint, resume, train
from flowmatch.training.progress import NullReporter

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
INTERRUPTED = TrainConfig(
    data="moons",
    steps=400,
    batch_size=32,
    model=ModelConfig(width=16, depth=2),
    checkpoint_every=50,
    log_every=20,
    warmup_steps=10,
    threads=1,
)
"""The run the signal test interrupts (and trains straight through to compare)."""


class Announce(NullReporter):
    def start(self, total: int, initial: int) -> None:
        print("loop", flush=True)


def interrupt(signum, frame):
    raise KeyboardInterrupt


def ignore(signum, frame):
    pass


def handle(handler) -> None:
    for sig in SIGNALS:
        signal.signal(sig, handler)


def attempt(run: Path) -> str:
    """Train or resume ``run``; before the library takes the signals over, they interrupt
    (as Ctrl-C does); after the attempt they are dropped until the next one."""
    try:
        handle(interrupt)
        try:
            if (run / "config.json").exists():
                result = resume(run, reporter=Announce())
            else:
                result = train(INTERRUPTED, run, reporter=Announce())
        finally:
            handle(ignore)
    except TrainingInterrupted:
        return f"interrupted {load_checkpoint(run / 'checkpoint.safetensors')[1]['step']}"
    except KeyboardInterrupt:
        return "startup"
    return f"done {result.step}"


def main() -> None:
    import dataclasses
    import tempfile

    handle(ignore)  # a signal that comes between attempts is dropped
    with tempfile.TemporaryDirectory() as warm:  # torch imports modules on first use; an
        # interrupted import breaks them for the rest of a process that goes on (a CLI exits)
        train(dataclasses.replace(INTERRUPTED, steps=1), Path(warm) / "run")
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "go":
            print("started", flush=True)
            print(attempt(Path(arg)), flush=True)
        elif command == "finish":
            handle(signal.SIG_IGN)  # the library leaves ignored signals ignored
            print(f"done {resume(Path(arg)).step}", flush=True)
            handle(ignore)
        elif command == "quit":
            return


if __name__ == "__main__":
    main()
