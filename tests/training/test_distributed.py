"""Multi-process training on gloo (CPU): DDP steps, rank-0 writes, stops, deaths, resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flowmatch.errors import FlowmatchError
from flowmatch.training import TrainConfig, load_checkpoint
from flowmatch.training.distributed import Job, rank_seed
from flowmatch.training.ema import EMA
from flowmatch.training.loop import TrainingLoss
from flowmatch.training.methods import METHODS
from flowmatch.training.optim import make_optimizer, optimizer_step
from tests.training.ddp_step import make_model, whole_batch

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120
RUN = ["--data", "moons", "--width", "16", "--depth", "2", "--batch-size", "32"]
RUN += ["--warmup-steps", "10", "--log-every", "20", "--checkpoint-every", "40"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flowmatch(*args: str, **kwargs) -> subprocess.Popen:
    """Start ``python -m flowmatch ARGS`` from the repository root."""
    return subprocess.Popen(
        [sys.executable, "-m", "flowmatch", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the job did not end within {timeout}s: {err}")
    return proc.returncode, out, err


def said(err: str) -> list[str]:
    """The lines of stderr that say something (not the progress display)."""
    return [line for line in err.splitlines() if line.startswith("flowmatch:")]


def run(*args: str) -> tuple[int, str, str]:
    return finish(flowmatch(*args))


def assert_same_weights(a: Path, b: Path) -> None:
    """The runs' checkpoints hold the same model, EMA and optimizer tensors, bit for bit."""
    ta, _ = load_checkpoint(a / "checkpoint.safetensors")
    tb, _ = load_checkpoint(b / "checkpoint.safetensors")
    trained = [k for k in ta if not k.startswith("rng.")]
    assert trained and set(trained) == {k for k in tb if not k.startswith("rng.")}
    for k in trained:
        assert torch.equal(ta[k], tb[k]), k


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the job ended before {what}: {proc.communicate()}"
        assert time.monotonic() < end, f"no {what} within {timeout}s"
        time.sleep(0.05)


def test_rank_seeds_keep_rank_0_and_differ_between_ranks():
    seeds = [rank_seed(5, r) for r in range(8)]
    assert seeds[0] == 5 and len(set(seeds)) == 8
    assert Job().most(2) == 2 and Job().gather("x") == ["x"]  # one process: the identity


def test_one_ddp_step_equals_one_step_on_the_whole_batch(tmp_path):
    """Two gloo processes, each on half of a batch, take the step one process takes on all
    of it (global gradient clipping included); the logged loss is the whole batch's mean and
    both ranks hold the same weights and EMA."""
    cfg = TrainConfig(method="distill", distill_steps=2)
    model = make_model()
    ema = EMA(model, 0.9)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, params, torch.device("cpu"))
    loss = TrainingLoss(METHODS["distill"](cfg), model)(whole_batch(), torch.Generator())
    optimizer_step(loss, params, optimizer, grad_clip=0.05, ema=ema)

    port = str(free_port())
    procs = []
    for rank in range(2):
        env = os.environ | {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.training.ddp_worker", str(tmp_path)],
                cwd=ROOT,
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        code, _, err = finish(proc)
        assert code == 0, err
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert torch.allclose(ranks[0]["loss"], loss.detach(), atol=1e-6)
    for mine, got in zip(params, ranks[0]["params"], strict=True):
        assert torch.allclose(got, mine.detach(), atol=1e-6, rtol=0)
    zero, one = ranks[0]["params"] + ranks[0]["ema"], ranks[1]["params"] + ranks[1]["ema"]
    for a, b in zip(zero, one, strict=True):
        assert torch.equal(a, b)
    assert any(  # the step moved the weights (else equality would prove nothing)
        not torch.allclose(p, q) for p, q in zip(make_model().parameters(), params, strict=True)
    )


STEPS = 160


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """A run of `train --nproc 2` from start to end (the reference of the resume tests)."""
    full = tmp_path_factory.mktemp("jobs") / "full"
    code, out, err = run("train", "--out", str(full), "--nproc", "2", "--steps", str(STEPS), *RUN)
    assert code == 0, err
    assert out.count(f"done: step {STEPS}/{STEPS}") == 1  # rank 0 reports, once
    return full


def test_only_rank_0_writes_and_the_checkpoint_holds_every_rank_s_generator(uninterrupted):
    assert sorted(p.name for p in uninterrupted.iterdir()) == [
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
    ]
    steps = [json.loads(line)["step"] for line in (uninterrupted / "metrics.jsonl").open()]
    assert steps == list(range(20, STEPS + 1, 20))  # one row per logged step, not one per rank
    tensors, meta = load_checkpoint(uninterrupted / "checkpoint.safetensors")
    assert meta["world_size"] == 2  # both ranks' generators are kept, and they differ
    assert not torch.equal(tensors["rng.train"], tensors["rng.train.rank1"])


def test_a_stopped_job_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, uninterrupted):
    """SIGTERM to `train --nproc 2` checkpoints one step for the job; resumed with 2
    processes it ends bit for bit where an uninterrupted job ends; resumed with 1, it says
    that it goes on on a new random stream, and finishes."""
    cut = tmp_path / "cut"
    proc = flowmatch("train", "--out", str(cut), "--nproc", "2", "--steps", str(STEPS), *RUN)
    wait_for(lambda: (cut / "checkpoint.safetensors").exists(), "checkpoint", proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 130, err
    lines = said(err)
    assert len(lines) == 1 and "checkpointed" in lines[0] and "--nproc 2" in lines[0], err
    step = load_checkpoint(cut / "checkpoint.safetensors")[1]["step"]
    assert 40 <= step < STEPS
    shutil.copytree(cut, tmp_path / "other")

    code, out, err = run("train", "--resume", str(cut), "--nproc", "2")
    assert code == 0 and f"done: step {STEPS}/{STEPS}" in out, err
    assert_same_weights(uninterrupted, cut)
    steps = [json.loads(line)["step"] for line in (cut / "metrics.jsonl").open()]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS

    code, out, err = run("train", "--resume", str(tmp_path / "other"))
    assert code == 0 and f"done: step {STEPS}/{STEPS}" in out, err
    assert said(err) == [
        f"flowmatch: warning: {tmp_path / 'other'}: saved by 2 process(es), resumed by 1: "
        f"training goes on from step {step} on a new random stream"
    ]


def test_a_killed_rank_ends_the_job_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    launcher = flowmatch("train", "--out", str(run_dir), "--nproc", "2", "--steps", "100000", *RUN)
    wait_for(lambda: (run_dir / "checkpoint.safetensors").exists(), "checkpoint", launcher)
    rank1 = [pid for pid in children(launcher.pid) if environ(pid).get("RANK") == "1"]
    assert len(rank1) == 1
    start = time.monotonic()
    os.kill(rank1[0], signal.SIGKILL)
    code, _, err = finish(launcher, timeout=60)
    assert code != 0 and time.monotonic() - start < 60
    lines = said(err)
    assert len(lines) == 1 and "rank 1" in lines[0] and "SIGKILL" in lines[0], err
    assert (run_dir / "checkpoint.safetensors").exists()  # the last good one stays


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job's processes in /proc")
def test_two_nodes_on_localhost_train_what_one_node_of_two_processes_does(tmp_path, uninterrupted):
    """Two torchrun agents (two "nodes" of one process) meet by c10d rendezvous on localhost
    and train the run `--nproc 2` trains, bit for bit."""
    args = ["--steps", str(STEPS), *RUN]
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                endpoint,
                "--rdzv-id",
                "two-nodes",
                "-m",
                "flowmatch",
                "train",
                "--out",
                str(tmp_path / "two"),
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    end = time.monotonic() + TIMEOUT
    while all(node.poll() is None for node in nodes) and time.monotonic() < end:
        time.sleep(0.1)
    done = [f"done: step {STEPS}/{STEPS}" in finish_node(node) for node in nodes]
    assert done.count(True) == 1  # rank 0 reports, on whichever node it is
    assert_same_weights(uninterrupted, tmp_path / "two")


def finish_node(node: subprocess.Popen) -> str:
    """A node's stdout once its training ended. An agent whose peer left first may wait in
    torchrun's exit barrier (up to 5 minutes) after its process is done: 30 s after the
    first agent ended, it is stopped."""
    try:
        out, err = node.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        node.kill()
        out, err = node.communicate()
        assert "Traceback" not in err and "error" not in err.lower(), err
        return out
    assert node.returncode == 0, err
    return out


def test_single_process_methods_and_uneven_batches_are_refused_in_one_line(tmp_path):
    code, _, err = run("train", "--out", str(tmp_path / "p"), "--nproc", "2", "--method", "planar")
    assert code == 2 and said(err) == [
        "flowmatch: error: --method planar trains in one process only; drop --nproc "
        "(several processes train fm, distill, cnf)"
    ]
    assert not (tmp_path / "p").exists()
    assert Job(1, 4).local_batch(32) == 8
    with pytest.raises(FlowmatchError, match="--batch-size 33 does not split evenly over 2"):
        Job(0, 2).local_batch(33)


def test_a_cnf_trains_in_two_processes_in_bf16(tmp_path):
    """Maximum likelihood (divergences by autograd inside the loss) under DDP and autocast."""
    code, out, err = run(
        "train",
        "--out",
        str(tmp_path / "cnf"),
        "--nproc",
        "2",
        "--method",
        "cnf",
        "--precision",
        "bf16",
        "--steps",
        "6",
        "--cnf-steps",
        "2",
        *RUN,
    )
    assert code == 0 and "done: step 6/6" in out, err


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs a GPU per process (2)")
def test_two_gpu_processes_train_on_nccl_and_resume(tmp_path):
    """`--device cuda --nproc 2`: one GPU per process (LOCAL_RANK), NCCL gradients."""
    run_dir, args = tmp_path / "gpu", ["--device", "cuda", "--steps", str(STEPS), *RUN]
    code, out, err = run(
        "train", "--out", str(run_dir), "--nproc", "2", "--stop-after", "60", *args
    )
    assert code == 0, err
    code, out, err = run("train", "--resume", str(run_dir), "--nproc", "2")
    assert code == 0 and f"done: step {STEPS}/{STEPS}" in out, err
    assert load_checkpoint(run_dir / "checkpoint.safetensors")[1]["world_size"] == 2


def test_nproc_inside_a_torchrun_process_is_refused(tmp_path, monkeypatch, capsys):
    from flowmatch.cli.main import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--out", str(tmp_path / "r"), "--nproc", "2"]) == 2
    assert said(capsys.readouterr().err) == [
        "flowmatch: error: this process was started by torchrun, which already says how many "
        "processes there are; drop --nproc"
    ]
