"""--precision (autocast, fp16's gradient scaler) and --compile of training."""

import copy
import dataclasses
import json
import os
import time

import pytest
import torch

from flowmatch.cli.main import main
from flowmatch.errors import FlowmatchError
from flowmatch.flows.continuous import FlowModel
from flowmatch.models import MLPVelocity, ModelConfig
from flowmatch.training import TrainConfig, load_checkpoint, resume, train
from flowmatch.training.build import build_state, prepare_run
from flowmatch.training.optim import optimizer_step
from flowmatch.training.precision import (
    NOT_COMPILED,
    PRECISIONS,
    Precision,
    compile_velocity,
    compiler_missing,
)
from tests.cli.helpers import error_line

# importing torch's compiler (Inductor) warns of its own use of a deprecated torch.jit API
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)

CPU = torch.device("cpu")
DEVICE = torch.device(os.environ.get("FLOWMATCH_TEST_DEVICE", "cpu"))
"""Where the training tests run: the CPU here and in CI, cuda in benchmarks/gpu_check.sh."""
TINY = TrainConfig(
    device=str(DEVICE),
    data="moons",
    steps=300,
    batch_size=128,
    model=ModelConfig(width=32, depth=2),
    warmup_steps=10,
    log_every=25,
    checkpoint_every=1000,
    threads=1,
)


def tiny(**kw) -> TrainConfig:
    return dataclasses.replace(TINY, **kw)


def logged_losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").open()]


def test_bf16_autocast_trains_a_2d_model_like_fp32(tmp_path):
    train(tiny(), tmp_path / "fp32")
    result = train(tiny(precision="bf16"), tmp_path / "bf16")
    fp32, bf16 = logged_losses(tmp_path / "fp32"), logged_losses(tmp_path / "bf16")
    assert isinstance(result.loss, float) and result.loss == bf16[-1]
    # it learns: from the untrained loss (about 2: v = 0 against x1 - x0) clearly down ...
    assert bf16[-1] < 0.9 * bf16[0]
    # ... to where fp32 gets
    assert abs(bf16[-1] - fp32[-1]) < 0.1 * fp32[-1]
    # and autocast was on: the same seed and batches, but weights rounded differently
    a, _ = load_checkpoint(tmp_path / "fp32" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "bf16" / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    assert not torch.equal(a["model.velocity.net.0.weight"], b["model.velocity.net.0.weight"])
    record = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert record["config"]["precision"] == "bf16" and record["config"]["compile"] is False


def test_fp16_on_the_cpu_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--precision", "fp16", "--steps", "5"]) == 2
    line = error_line(capsys)
    assert "--precision fp16 needs a CUDA GPU" in line and "--precision bf16" in line
    assert not out.exists()


def test_an_unknown_precision_is_refused():
    with pytest.raises(FlowmatchError, match="unknown --precision 'fp8'; choose one of: fp32"):
        tiny(precision="fp8").validate()
    with pytest.raises(FlowmatchError, match="unknown --precision"):
        Precision("fp64", CPU)


def test_the_forward_pass_runs_at_the_precision_asked_for():
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    dtypes = {}
    for name in ("fp32", "bf16"):
        precision = Precision(name, CPU)
        with precision.autocast():
            dtypes[name] = layer(x).dtype
        assert precision.scaler is None  # a gradient scaler is fp16's, on CUDA
    assert dtypes == {"fp32": torch.float32, "bf16": PRECISIONS["bf16"]}
    assert layer(x).dtype == torch.float32  # nothing is left switched on


@pytest.mark.parametrize("grad_clip", [0.0, 0.5])
def test_a_power_of_two_loss_scale_changes_no_step(grad_clip):
    # the scaled path (fp16 on CUDA) checked with a CPU scaler: scaling by 2**10 and unscaling
    # is exact, so the steps equal the unscaled ones bit for bit, clipping included
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    twin = copy.deepcopy(net)
    x = torch.randn(16, 3)
    adam = torch.optim.AdamW(net.parameters(), lr=0.1)
    twin_adam = torch.optim.AdamW(twin.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for _ in range(3):
        optimizer_step(5 * net(x).square().mean(), list(net.parameters()), adam, grad_clip)
        loss = 5 * twin(x).square().mean()
        optimizer_step(loss, list(twin.parameters()), twin_adam, grad_clip, scaler=scaler)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    # an overflowing step is skipped and the scale backs off
    before = [p.detach().clone() for p in twin.parameters()]
    loss = float("inf") * twin(x).sum()
    optimizer_step(loss, list(twin.parameters()), twin_adam, grad_clip, scaler=scaler)
    assert all(torch.equal(a, b) for a, b in zip(before, twin.parameters(), strict=True))
    assert scaler.get_scale() == 2.0**9


def test_the_gradient_scaler_is_checkpointed_only_when_there_is_one(tmp_path):
    cfg, record = prepare_run(tiny())
    plain = build_state(cfg, record, CPU)
    assert "grad_scaler" not in plain.record(None)[1]  # fp32 and bf16 runs write none
    scaled = build_state(cfg, record, CPU)
    # fp16's scaler lives on CUDA; a CPU one with settings other than the defaults stands in
    scaled.precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**5, growth_interval=7)
    scaled.save(tmp_path / "checkpoint.safetensors", None)
    again = build_state(cfg, record, CPU)
    again.precision.scaler = torch.amp.GradScaler("cpu")
    again.load(tmp_path / "checkpoint.safetensors")
    assert again.precision.scaler.state_dict() == scaled.precision.scaler.state_dict()
    assert again.precision.scaler.get_scale() == 2.0**5
    assert again.precision.scaler.state_dict()["growth_interval"] == 7


def test_a_run_saved_before_precision_and_compile_existed_resumes(tmp_path):
    train(tiny(steps=20, log_every=5), tmp_path / "full")
    train(tiny(steps=20, log_every=5), tmp_path / "old", stop_after=10)
    config = tmp_path / "old" / "config.json"
    record = json.loads(config.read_text())
    del record["config"]["precision"], record["config"]["compile"]
    config.write_text(json.dumps(record))
    assert resume(tmp_path / "old").complete
    assert json.loads(config.read_text())["config"].keys().isdisjoint({"precision", "compile"})
    a, _ = load_checkpoint(tmp_path / "full" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "old" / "checkpoint.safetensors")
    for key in a:  # it resumed as the fp32, eager run it was
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("method", sorted(NOT_COMPILED))
def test_compile_is_refused_where_it_cannot_work(tmp_path, capsys, method):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--compile", "--method", method]) == 2
    line = error_line(capsys)
    assert f"--compile does not work with --method {method}" in line
    assert line.endswith("drop --compile") and not out.exists()


def test_compile_without_a_cpp_compiler_is_refused():
    inductor_config = pytest.importorskip("torch._inductor.config")
    flow = FlowModel(MLPVelocity(2, width=8, depth=1), torch.zeros(2), torch.ones(2))
    with (
        inductor_config.patch({"cpp.cxx": ("no-such-compiler++",)}),
        pytest.raises(FlowmatchError, match=r"needs a C\+\+ compiler.*drop --compile"),
    ):
        compile_velocity(flow, CPU)
    assert flow.velocity._compiled_call_impl is None  # left as it was
    with pytest.raises(FlowmatchError, match="Linear has none; drop --compile"):
        compile_velocity(torch.nn.Linear(2, 2), CPU)


def test_compile_gives_the_eager_losses(tmp_path):
    why = compiler_missing(DEVICE)
    if why is not None:
        pytest.skip(f"torch.compile cannot run here: {why}")
    from torch._dynamo.utils import counters

    cfg = tiny(steps=5, log_every=1)
    train(cfg, tmp_path / "eager")
    counters.clear()
    t0 = time.perf_counter()
    train(dataclasses.replace(cfg, compile=True), tmp_path / "compiled")
    seconds = time.perf_counter() - t0
    assert counters["stats"]["unique_graphs"] >= 1, "nothing was compiled"
    eager, compiled = logged_losses(tmp_path / "eager"), logged_losses(tmp_path / "compiled")
    assert len(compiled) == 5
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=0)
    a, _ = load_checkpoint(tmp_path / "eager" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "compiled" / "checkpoint.safetensors")
    assert a.keys() == b.keys()  # no "_orig_mod." in a compiled run's names
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    record = json.loads((tmp_path / "compiled" / "config.json").read_text())
    assert record["config"]["compile"] is True and record["config"]["precision"] == "fp32"
    print(f"compiled run of 5 steps: {seconds:.1f}s")


@pytest.mark.skipif(
    DEVICE.type != "cuda", reason="fp16 trains on CUDA only (FLOWMATCH_TEST_DEVICE)"
)
def test_fp16_with_its_gradient_scaler_trains_like_fp32_and_resumes_exactly(tmp_path):
    train(tiny(), tmp_path / "fp32")
    train(tiny(precision="fp16"), tmp_path / "fp16")
    fp32, fp16 = logged_losses(tmp_path / "fp32"), logged_losses(tmp_path / "fp16")
    assert fp16[-1] < 0.9 * fp16[0] and abs(fp16[-1] - fp32[-1]) < 0.1 * fp32[-1]
    _, meta = load_checkpoint(tmp_path / "fp16" / "checkpoint.safetensors")
    assert "grad_scaler" in meta
    train(tiny(precision="fp16"), tmp_path / "cut", stop_after=110)
    resume(tmp_path / "cut")
    a, _ = load_checkpoint(tmp_path / "fp16" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")
    for key in a:  # cuBLAS may order a sum differently from one launch to the next
        torch.testing.assert_close(b[key], a[key], msg=key)
