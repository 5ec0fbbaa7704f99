"""Nothing lost, ever: every refused command is one line, exit 2, and changes no file at all."""

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from flowmatch.cli import main
from flowmatch.storage import write_new
from tests.cli.helpers import error_line

TINY = ["--steps", "20", "--batch-size", "64", "--width", "16", "--depth", "1",
        "--log-every", "10", "--checkpoint-every", "20"]  # fmt: skip
BIG = str(10**12)
HUGE_SEED = str(2**70)


def diverge(run, dst):
    """A copy of ``run`` whose weights are finite but so large that its samples overflow."""
    shutil.copytree(run, dst)
    ck = dst / "checkpoint.safetensors"
    with safe_open(str(ck), framework="pt") as f:
        header = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for k, t in tensors.items():
        if t.is_floating_point() and k.startswith(("ema.", "model.")):
            tensors[k] = t * 1e30
    save_file(tensors, str(ck), metadata=header)
    return dst


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder with a tiny run, a diverged copy, and the files the bad commands aim at."""
    root = tmp_path_factory.mktemp("lost")
    run = root / "run"
    assert main(["train", "--data", "8gaussians", "--out", str(run), *TINY]) == 0
    diverge(run, root / "diverged")
    (run / "plots").mkdir()
    (run / "plots" / "samples.png").write_bytes(b"an older figure")
    (root / "taken.json").write_bytes(b"precious")
    (root / "taken.npy").write_bytes(b"precious")
    (root / "a-file").write_bytes(b"not a folder")
    (root / "dangling.npy").symlink_to(root / "gone" / "target.npy")
    np.save(root / "points.npy", np.zeros((8, 2), dtype=np.float32))
    return root


def snapshot(folder):
    """Every path under ``folder``: its kind, and for files size, mtime and content hash."""
    seen = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            seen[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            seen[rel] = ("dir",)
        else:
            st = p.stat()
            seen[rel] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return seen


# (command line with {run}, {div} and {root} filled in, what the one line must say)
REFUSED = [
    # 1. outputs that exist, or that lie inside a run folder
    ("eval {run} --json {run}/checkpoint.safetensors", "--json must end in .json"),
    ("eval {run} --json {run}/config.json", "already exists"),
    ("eval {run} --json {run}/other.json", "inside the run folder"),
    ("eval {run} --json {run}/plots/eval.json", "inside the run folder"),
    ("eval {run} --json {root}/taken.json", "already exists"),
    ("sample {run} --out {root}/taken.npy", "already exists"),
    ("sample {run} --out {run}/samples.npy", "inside the run folder"),
    ("sample {run} --grid {run}/plots/grid.png", "inside the run folder"),
    ("invert {run} --data {root}/points.npy --out {run}/z.npy", "inside the run folder"),
    ("logprob {run} --data moons --out {run}/lp.npy", "inside the run folder"),
    ("plot {run}", "already holds samples.png; add --overwrite"),
    ("plot {run} --out {run}", "inside the run folder"),
    ("plot {run} --out {root}/a-file", "is a file, not a folder"),
    ("train --data moons --out {run}/inner", "inside the run folder"),
    ("reflow {run} --out {run}/reflowed", "inside the run folder"),
    ("fit-energy U1 --out {run}/energy", "inside the run folder"),
    # 3. non-finite samples and absurd guidance
    ("sample {div} --n 16 --out {root}/s.npy", "not finite (NaN or Inf)"),
    ("invert {div} --data {root}/points.npy --out {root}/z.npy", "not finite"),
    ("sample {run} --out {root}/s.npy --guidance inf", "--guidance must be a finite number"),
    ("eval-images {run} --guidance nan", "--guidance must be a finite number"),
    # 4. paths that cannot be written
    ("eval {run} --json {root}/missing/e.json", "does not exist"),
    ("sample {run} --out {root}/a-file/s.npy", "is a file, not a folder"),
    ("sample {run} --out {root}/dangling.npy", "symbolic link"),
    # 5. sizes that cannot fit, refused before any allocation
    ("sample {run} --n " + BIG + " --out {root}/s.npy", "needs about"),
    ("sample {run} --n 4 --solver-steps 1000000000 --out {root}/s.npy", "1000000000 midpoint"),
    ("plot {run} --out {root}/figs --solver-steps 1000000000", "needs about"),
    ("eval {run} --n 10000000000", "needs about"),
    ("eval {run} --no-curve --rows euler:100000000000", "--rows over 100000000000 euler steps"),
    ("eval {run} --no-curve --oracle --oracle-points " + BIG, "--oracle-points " + BIG),
    ("eval {run} --no-curve --oracle --oracle-samples " + BIG, "--oracle-samples " + BIG),
    ("logprob {run} --data moons --n " + BIG, "needs about"),
    ("logprob {run} --data moons --n 100000000000 --batch-size 1000000000", "needs about"),
    ("logprob {run} --data moons --solver euler --divergence-nodes " + BIG, "--divergence-nodes"),
    ("reflow {run} --out {root}/new --n-pairs 10000000000", "needs about"),
    ("eval-images {run} --n " + BIG, "needs about"),
    # 6. seeds and devices
    ("sample {run} --out {root}/s.npy --seed " + HUGE_SEED, "--seed must be an integer"),
    ("sample {run} --out {root}/s.npy --seed -1", "--seed must be an integer"),
    ("eval {run} --seed -1", "--seed must be an integer"),
    ("plot {run} --out {root}/figs --seed " + HUGE_SEED, "--seed must be an integer"),
    ("logprob {run} --data moons --seed " + HUGE_SEED, "--seed must be an integer"),
    ("fit-energy U1 --out {root}/new --seed -1", "--seed must be an integer"),
    ("reflow {run} --out {root}/new --pair-seed " + HUGE_SEED, "--pair-seed must be"),
    ("distill {run} --out {root}/new --seed -1", "--seed must be an integer"),
    ("eval-images {run} --seed -1", "--seed must be an integer"),
    ("sample {run} --out {root}/s.npy --device meta", "unknown --device 'meta'"),
    ("sample {run} --out {root}/s.npy --device mps", "unknown --device 'mps'"),
    ("eval {run} --device garbage", "unknown --device 'garbage'"),
    ("plot {run} --out {root}/figs --device meta", "unknown --device 'meta'"),
    # 8. reflow: checked before any pair is made or written into the teacher's folder
    ("reflow {run} --out {root}/new --pairs-file {root}/pairs.npy", "must end in .npz"),
    ("reflow {run} --out {root}/new --pairs-file {run}/x.npz", "inside the run folder"),
    ("reflow {run} --out {root}/new --lr -1", "--lr must be a finite number > 0"),
    ("reflow {run} --out {root}/new --lr nan", "--lr must be a finite number > 0"),
    ("distill {run} --out {root}/new --batch-size 0", "--batch-size must be an integer >= 1"),
    ("reflow {run} --out {root}/new --train-steps 0", "--train-steps must be an integer >= 1"),
    ("reflow {run} --out {run}", "already holds a run"),
    ("train --data moons --out {root}/new --allow-data-change", "goes with --resume"),
]


@pytest.mark.parametrize(("command", "fragment"), REFUSED, ids=[c for c, _ in REFUSED])
def test_a_refused_command_is_one_line_and_changes_nothing(root, command, fragment, capsys):
    fill = {"run": root / "run", "div": root / "diverged", "root": root}
    argv = [word.format(**fill) for word in command.split()]
    before = snapshot(root)
    assert main(argv) == 2
    assert fragment in error_line(capsys)
    assert snapshot(root) == before


def test_the_run_folder_takes_its_own_eval_json_and_plots(root, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    shutil.rmtree(run / "plots")
    argv = ["eval", str(run), "--n", "50", "--no-curve", "--json", str(run / "eval.json")]
    assert main(argv) == 0  # what demo does in its fresh run
    assert main(argv) == 2  # but never over a previous one
    assert "already exists" in error_line(capsys)
    plot = ["plot", str(run), "--n", "50", "--solver", "euler", "--solver-steps", "1"]
    assert main(plot) == 0
    first = (run / "plots" / "samples.png").stat().st_mtime_ns
    assert main(plot) == 2
    assert "--overwrite" in error_line(capsys)
    assert main([*plot, "--overwrite"]) == 0
    assert (run / "plots" / "samples.png").stat().st_mtime_ns != first
    assert not [p for p in (run / "plots").iterdir() if p.name.endswith(".tmp")]


def test_resume_refuses_changed_data_unless_allowed(tmp_path, capsys):
    data, run = tmp_path / "points.npy", tmp_path / "run"
    np.save(data, np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32))
    assert main(["train", "--data", str(data), "--out", str(run), *TINY, "--stop-after", "10"]) == 0
    np.save(data, np.random.default_rng(1).normal(size=(256, 2)).astype(np.float32))
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert "--allow-data-change" in error_line(capsys)
    assert main(["train", "--resume", str(run), "--allow-data-change"]) == 0
    assert "done: step 20/20" in capsys.readouterr().out


# -- 2. two writers of one output ---------------------------------------------------------------
def test_two_writers_racing_for_one_name_leave_exactly_one_file(tmp_path):
    for round_ in range(20):
        path = tmp_path / f"s{round_}.npy"
        start = threading.Barrier(2)
        outcome = {}

        def write(i, path=path, start=start, outcome=outcome):
            start.wait()
            try:
                write_new(path, bytes([i]) * 4096)
                outcome[i] = "wrote"
            except FileExistsError:
                outcome[i] = "refused"

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcome.values()) == ["refused", "wrote"]
        winner = next(i for i, o in outcome.items() if o == "wrote")
        assert path.read_bytes() == bytes([winner]) * 4096
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"s{r}.npy" for r in range(20))


def test_sample_loses_a_race_for_its_out_with_one_line(root, tmp_path, monkeypatch, capsys):
    from flowmatch import storage

    out = tmp_path / "s.npy"
    real = storage.write_new

    def other_command_first(path, data):  # another `sample --out SAME` finishes just before
        out.write_bytes(b"the other command's samples")
        return real(path, data)

    monkeypatch.setattr(storage, "write_new", other_command_first)
    assert main(["sample", str(root / "run"), "--n", "8", "--out", str(out)]) == 2
    assert "appeared while this command ran" in error_line(capsys)
    assert out.read_bytes() == b"the other command's samples"
    assert [p.name for p in tmp_path.iterdir()] == ["s.npy"]


# -- 4. a full disk, a read-only or forbidden folder ---------------------------------------------
FAILED_WRITES = [
    ("sample", errno.ENOSPC, "no space left on the device"),
    ("eval", errno.ENOSPC, "no space left on the device"),
    ("plot", errno.ENOSPC, "no space left on the device"),
    ("sample", errno.EROFS, "the file system is read-only"),
    ("eval", errno.EACCES, "permission denied"),
]


@pytest.mark.parametrize(("command", "code", "reason"), FAILED_WRITES)
def test_a_failed_write_is_one_line_naming_the_path_and_leaves_nothing(
    root, tmp_path, command, code, reason, monkeypatch, capsys
):
    def fail(fd):  # the data is in the temporary file; making it durable fails
        raise OSError(code, os.strerror(code))

    run = str(root / "run")
    out = {"sample": "s.npy", "eval": "e.json", "plot": "figs"}[command]
    argv = {
        "sample": ["sample", run, "--n", "8", "--out"],
        "eval": ["eval", run, "--n", "20", "--no-curve", "--json"],
        "plot": ["plot", run, "--n", "20", "--solver", "euler", "--solver-steps", "1", "--out"],
    }[command]
    monkeypatch.setattr(os, "fsync", fail)
    assert main([*argv, str(tmp_path / out)]) == 2
    line = error_line(capsys)
    assert f"cannot write {tmp_path / out}" in line and reason in line, line
    assert ("free there" in line) == (code == errno.ENOSPC)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_refused_before_any_work(root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert main(["sample", str(root / "run"), "--out", str(tmp_path / "s.npy")]) == 2
    assert f"folder {tmp_path} is not writable (permission denied)" in error_line(capsys)


def test_an_os_error_anywhere_is_one_line_naming_the_path(root, monkeypatch, capsys):
    from flowmatch.training import runs

    ck = root / "run" / "checkpoint.safetensors"

    def forbidden(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(ck))

    monkeypatch.setattr(runs, "load_run", forbidden)
    assert main(["eval", str(root / "run")]) == 2
    assert error_line(capsys) == f"flowmatch: error: {ck}: permission denied"


def test_a_real_full_tmpfs(root, tmp_path):
    """On a 64 kB tmpfs, mounted in a user namespace where the kernel allows it (no root)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1) to mount a tmpfs without root")
    mount = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c"]
    probe = subprocess.run([*mount, f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs without root here: {probe.stderr.strip()}")
    out = tmp_path / "s.npy"  # 20000 x 2 float32: 160 kB
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {tmp_path} && "
        f"{sys.executable} -m flowmatch sample {root / 'run'} --n 20000 --solver euler "
        f"--solver-steps 1 --out {out}; echo rc=$?; ls -A {tmp_path}"
    )
    r = subprocess.run([*mount, script], capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot write {out}: no space left" in lines[0], r.stderr
    assert r.stdout.strip().splitlines() == ["rc=2"], r.stdout  # and the tmpfs is empty


# -- 7. warnings are one line too ------------------------------------------------------------------
def test_a_warning_in_a_command_is_one_line(monkeypatch, capsys):
    from flowmatch.cli import sample

    def warn(args):
        warnings.warn("the cache was rebuilt", RuntimeWarning, stacklevel=1)

    monkeypatch.setattr(sample, "run", warn)
    assert main(["sample", "RUN", "--out", "x.npy"]) == 0
    assert capsys.readouterr().err == "flowmatch: warning: the cache was rebuilt\n"
