"""The run folder under stress: full disks, lost folders, two writers, torn logs, stale
temporary files and changed data. Nothing is ever lost, and every failure is one line."""

import dataclasses
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from flowmatch import storage
from flowmatch.errors import FlowmatchError
from flowmatch.storage import StorageError
from flowmatch.training import load_checkpoint, resume, train
from flowmatch.training.lock import RunLock, RunLocked
from flowmatch.training.metrics_log import RunFolderWarning
from flowmatch.training.progress import NullReporter
from tests.training.test_interrupts import TINY, assert_same_checkpoint, logged_steps

ROOT = Path(__file__).resolve().parents[2]


def one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message, message
    return message


def fail_writes(monkeypatch, code: int, name: str = "checkpoint.safetensors", after: int = 0):
    """Make atomic_write of files called ``name`` fail with ``code`` after ``after`` writes."""
    real, count = storage.atomic_write, [0]

    def write(path, data):
        if Path(path).name == name:
            count[0] += 1
            if count[0] > after:
                raise OSError(code, os.strerror(code), str(path))
        real(path, data)

    monkeypatch.setattr(storage, "atomic_write", write)


def test_a_full_disk_at_the_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch):
    fail_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(StorageError) as exc_info:
        train(TINY, tmp_path / "run")
    message = one_line(exc_info)
    assert "no space left" in message and "it needs about" in message and "KiB" in message
    assert "no checkpoint was written" in message and "removed" in message
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    assert train(TINY, tmp_path / "run").complete  # the same --out works again


def test_a_full_disk_later_keeps_the_last_checkpoint_and_resumes_exactly(tmp_path, monkeypatch):
    train(TINY, tmp_path / "full")
    fail_writes(monkeypatch, errno.ENOSPC, after=1)  # the checkpoint of step 25 is written
    with pytest.raises(StorageError) as exc_info:
        train(TINY, tmp_path / "run")
    assert "the last good checkpoint, of step 25, is kept" in one_line(exc_info)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")[1]["step"] == 25
    assert not list((tmp_path / "run").glob(".*.tmp"))
    monkeypatch.undo()
    assert resume(tmp_path / "run").complete
    assert_same_checkpoint(tmp_path / "full", tmp_path / "run")
    assert logged_steps(tmp_path / "run") == [10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize(
    ("code", "says"), [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")]
)
def test_an_unwritable_folder_is_one_line(tmp_path, monkeypatch, code, says):
    fail_writes(monkeypatch, code, name="config.json")
    with pytest.raises(StorageError, match=says) as exc_info:
        train(TINY, tmp_path / "run")
    one_line(exc_info)
    assert not (tmp_path / "run").exists()


class RemoveFolderAt(NullReporter):
    def __init__(self, run_dir: Path, step: int) -> None:
        self.run_dir, self.step = run_dir, step

    def log(self, step, metrics):
        if step == self.step:
            shutil.rmtree(self.run_dir)


def test_a_run_folder_removed_under_a_run_is_one_line(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(StorageError, match="does not exist") as exc_info:
        train(TINY, run, reporter=RemoveFolderAt(run, 30))
    assert "no checkpoint was written" in one_line(exc_info)  # its checkpoint went with it


def test_a_dangling_symlink_is_one_line_and_written_through_never(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for attempt in (lambda: train(TINY, tmp_path / "link"), lambda: resume(tmp_path / "link")):
        with pytest.raises(FlowmatchError, match="symlink") as exc_info:
            attempt()
        one_line(exc_info)
    assert not (tmp_path / "nowhere").exists()


def test_a_dangling_checkpoint_symlink_is_not_a_fresh_start(tmp_path):
    train(TINY, tmp_path / "run", stop_after=25)
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    checkpoint.unlink()
    checkpoint.symlink_to(tmp_path / "elsewhere.safetensors")
    before = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(FlowmatchError, match="symlink") as exc_info:
        resume(tmp_path / "run")
    one_line(exc_info)
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == before


def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path):
    train(TINY, tmp_path / "run", stop_after=25)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunLocked) as exc_info:
            resume(tmp_path / "run")
        message = one_line(exc_info)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in message
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    assert resume(tmp_path / "run").complete  # released: the lock file went with it


def test_two_runs_into_one_folder_at_once_one_wins(tmp_path, monkeypatch):
    """Both pass the early checks, then race for the lock; the loser writes nothing."""
    barrier = threading.Barrier(2)
    acquire = RunLock.acquire

    def acquire_together(self):
        barrier.wait(timeout=60)
        return acquire(self)

    monkeypatch.setattr(RunLock, "acquire", acquire_together)
    outcomes = []

    def run():
        try:
            outcomes.append(train(dataclasses.replace(TINY, steps=200), tmp_path / "run"))
        except FlowmatchError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], RunLocked), outcomes
    assert "\n" not in str(errors[0])
    assert load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")[1]["step"] == 200


def test_stale_temporary_files_are_removed_on_start_and_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.k2j4h5g6.tmp").write_bytes(b"half a record")  # killed at once
    train(TINY, run, stop_after=25)
    assert not list(run.glob(".*.tmp"))
    stale = [run / ".checkpoint.safetensors.abcd_123.tmp", run / ".metrics.jsonl.zz99zz99.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    (run / ".notes.tmp").write_bytes(b"the user's")  # not a name atomic_write makes
    assert resume(run).complete
    assert not any(p.exists() for p in stale) and (run / ".notes.tmp").exists()


def test_a_torn_last_metrics_line_is_dropped_with_one_warning(tmp_path):
    train(TINY, tmp_path / "full")
    run = tmp_path / "run"
    train(TINY, run, stop_after=25)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 30, "loss": 0.5')  # killed mid-write
    with pytest.warns(RunFolderWarning) as caught:
        assert resume(run).complete
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "the last line" in str(caught[0].message)
    assert logged_steps(run) == [10, 20, 25, 30, 40, 50, 60]  # 25: where it stopped
    assert_same_checkpoint(tmp_path / "full", run)


def test_unreadable_metrics_lines_never_stop_a_run(tmp_path):
    run = tmp_path / "run"
    train(TINY, run, stop_after=25)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1:1] = ["garbage", "[1, 2]", '{"step": "ten"}', '{"loss": 1}']
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(RunFolderWarning, match="dropped 4 unreadable line") as caught:
        assert resume(run).complete
    assert len(caught) == 1
    assert logged_steps(run) == [10, 20, 25, 30, 40, 50, 60]


def test_a_metrics_log_that_cannot_be_written_is_a_warning(tmp_path):
    run = tmp_path / "run"
    train(TINY, run, stop_after=25)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()  # cannot be read, truncated or appended to
    with pytest.warns(RunFolderWarning, match="training goes on without it"):
        assert resume(run).complete
    assert load_checkpoint(run / "checkpoint.safetensors")[1]["step"] == TINY.steps


def test_a_run_without_a_checkpoint_resumes_from_zero(tmp_path):
    """A run killed before its first checkpoint: config.json and some log rows."""
    train(TINY, tmp_path / "full")
    run = tmp_path / "run"
    train(TINY, run, stop_after=25)
    (run / "checkpoint.safetensors").unlink()
    assert resume(run).complete
    assert logged_steps(run) == [10, 20, 30, 40, 50, 60]  # no duplicate rows
    assert_same_checkpoint(tmp_path / "full", run)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, torch.randn(400, 2, generator=torch.Generator().manual_seed(0)).numpy())
    return path


@pytest.mark.parametrize("change", ["append", "same size"])
def test_a_changed_data_file_is_refused_unless_allowed(tmp_path, data_file, change):
    run = tmp_path / "run"
    train(dataclasses.replace(TINY, data=str(data_file)), run, stop_after=25)
    saved = json.loads((run / "config.json").read_text())["fingerprints"]["data"]
    assert saved["bytes"] == data_file.stat().st_size and len(saved["sha256"]) == 64
    x = np.load(data_file)
    np.save(data_file, np.concatenate([x, x[:1]]) if change == "append" else x[::-1].copy())
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(FlowmatchError, match="changed since the run started") as exc_info:
        resume(run)
    assert str(data_file) in one_line(exc_info)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    with pytest.warns(RunFolderWarning, match="data file changed"):
        assert resume(run, allow_data_change=True).complete
    now = json.loads((run / "config.json").read_text())["fingerprints"]["data"]
    assert now["sha256"] != saved["sha256"]


def test_a_run_of_an_earlier_release_has_no_fingerprint_and_resumes(tmp_path, data_file):
    run = tmp_path / "run"
    train(dataclasses.replace(TINY, data=str(data_file)), run, stop_after=25)
    record = json.loads((run / "config.json").read_text())
    del record["fingerprints"]
    (run / "config.json").write_text(json.dumps(record))
    np.save(data_file, np.load(data_file)[::-1].copy())
    assert resume(run).complete
    assert "fingerprints" not in json.loads((run / "config.json").read_text())


def test_built_in_data_needs_no_fingerprint(tmp_path):
    train(dataclasses.replace(TINY, steps=2), tmp_path / "run")
    assert "fingerprints" not in json.loads((tmp_path / "run" / "config.json").read_text())


TMPFS_SCRIPT = textwrap.dedent(
    """
    import dataclasses, subprocess, sys
    from pathlib import Path
    from flowmatch.errors import FlowmatchError
    from flowmatch.models import ModelConfig
    from flowmatch.training import train
    from tests.training.test_interrupts import TINY

    base = Path(sys.argv[1])
    cfg = dataclasses.replace(TINY, model=ModelConfig(width=64, depth=2))
    for name, options in (("full", "size=64k"), ("readonly", "ro,size=1m")):
        mount = base / name
        mount.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], check=True)
        try:
            train(cfg, mount / "run")
            print(name, "trained")
        except FlowmatchError as exc:
            print(name, "left", sorted(p.name for p in mount.iterdir()), "said", exc)
    """
)


def test_a_real_full_disk_and_a_read_only_mount(tmp_path):
    """On small tmpfs mounts in a private mount namespace (needs unshare; else skipped)."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no unshare -rm here to mount a small tmpfs without root")
    out = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", TMPFS_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 2, out.stderr
    full, readonly = lines
    assert full.startswith("full left [] said cannot write") and "no space left" in full, full
    assert "it needs about" in full and "was removed" in full
    assert readonly.startswith("readonly left [] said") and "read-only" in readonly, readonly
