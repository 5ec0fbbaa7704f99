"""The U-Net velocity: shapes, time and class dependence, zero start, bad shapes and options,
the original network by default, channel multipliers and attention."""

import dataclasses

import pytest
import torch

import flowmatch
from flowmatch import FlowModel, TrainConfig
from flowmatch.errors import FlowmatchError
from flowmatch.models import ModelConfig, UNetVelocity, build_model
from flowmatch.models.unet import SelfAttention
from tests.training.resume_check import assert_resume_is_exact


@pytest.mark.parametrize(("shape", "levels"), [((1, 8, 8), 2), ((1, 28, 28), 2), ((3, 8, 12), 1)])
def test_shapes_and_scalar_time(shape, levels):
    v = UNetVelocity(shape, channels=8, levels=levels, num_classes=10)
    x = torch.randn(3, *shape)
    c = torch.tensor([1, 2, 3])
    out = v(x, torch.full((3,), 0.4), c)
    assert out.shape == (3, *shape)
    torch.testing.assert_close(v(x, 0.4, c), out)


def perturbed(v):
    """Move the zero-initialized output layers so the field is not identically 0."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in v.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return v


def test_starts_at_zero_and_depends_on_time_and_class():
    v = UNetVelocity((1, 8, 8), channels=8, levels=2, num_classes=10)
    x = torch.randn(2, 1, 8, 8)
    c = torch.tensor([0, 0])
    assert torch.equal(v(x, 0.3, c), torch.zeros_like(x))  # zero output layer: v = 0 at init
    v = perturbed(v)
    assert not torch.allclose(v(x, 0.1, c), v(x, 0.9, c))
    assert not torch.allclose(v(x, 0.5, c), v(x, 0.5, torch.tensor([7, 7])))
    assert not torch.allclose(v(x, 0.5, c), v(x, 0.5, None))  # the null condition


def test_samples_are_independent_in_the_batch():
    v = perturbed(UNetVelocity((1, 8, 8), channels=8, levels=1, num_classes=3))
    x, c = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    full = v(x, 0.5, c)
    torch.testing.assert_close(v(x[2:3], 0.5, c[2:3]), full[2:3])  # GroupNorm, no BatchNorm


def test_image_flow_model_standardizes_per_image_shape():
    v = UNetVelocity((1, 8, 8), channels=8, levels=1)
    flow = FlowModel(v, torch.full((64,), 0.3), torch.full((64,), 2.0))
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(flow.standardize(x), (x - 0.3) / 2.0)
    torch.testing.assert_close(flow.unstandardize(flow.standardize(x)), x)
    assert flow.sample(2, solver="euler", steps=2, seed=0).shape == (2, 1, 8, 8)


def test_bad_shapes_are_rejected():
    with pytest.raises(FlowmatchError, match="divisible by 4"):
        build_model(ModelConfig(name="unet", levels=2), (1, 6, 6))
    with pytest.raises(FlowmatchError, match="images"):
        build_model(ModelConfig(name="unet"), (16,))
    with pytest.raises(FlowmatchError, match="use the unet model"):
        build_model(ModelConfig(name="mlp"), (1, 8, 8))


# state_dict of UNetVelocity((1, 8, 8), channels=8, levels=2, num_classes=10), taken from the
# code before --channel-mult and --attention existed: old run folders must load into it
_RES = ("norm1.weight", "norm1.bias", "conv1.weight", "conv1.bias", "film.weight", "film.bias",
        "norm2.weight", "norm2.bias", "conv2.weight", "conv2.bias")  # fmt: skip


def _res(name, c_in, c_out, skip=True):
    shapes = [(c_in,), (c_in,), (c_out, c_in, 3, 3), (c_out,), (2 * c_out, 32), (2 * c_out,),
              (c_out,), (c_out,), (c_out, c_out, 3, 3), (c_out,)]  # fmt: skip
    keys = [(f"{name}.{k}", s) for k, s in zip(_RES, shapes, strict=True)]
    if skip and c_in != c_out:
        keys += [(f"{name}.skip.weight", (c_out, c_in, 1, 1)), (f"{name}.skip.bias", (c_out,))]
    return keys


DEFAULT_KEYS = [
    ("time_embed.1.weight", (32, 32)), ("time_embed.1.bias", (32,)),
    ("time_embed.3.weight", (32, 32)), ("time_embed.3.bias", (32,)),
    ("condition.table.weight", (11, 32)), ("stem.weight", (8, 1, 3, 3)), ("stem.bias", (8,)),
    *_res("down.0", 8, 8), *_res("down.1", 8, 16), *_res("down.2", 16, 32),
    ("downsample.0.weight", (8, 8, 3, 3)), ("downsample.0.bias", (8,)),
    ("downsample.1.weight", (16, 16, 3, 3)), ("downsample.1.bias", (16,)),
    *_res("mid", 32, 32), *_res("up.0", 64, 32), *_res("up.1", 32, 16), *_res("up.2", 16, 8),
    ("upsample.0.weight", (16, 32, 3, 3)), ("upsample.0.bias", (16,)),
    ("upsample.1.weight", (8, 16, 3, 3)), ("upsample.1.bias", (8,)),
    ("out_norm.weight", (8,)), ("out_norm.bias", (8,)), ("out.weight", (1, 8, 3, 3)),
    ("out.bias", (1,)),
]  # fmt: skip


def test_defaults_build_the_original_network():
    cfg = ModelConfig(name="unet", channels=8, levels=2, num_classes=10)
    torch.manual_seed(0)
    v = build_model(cfg, (1, 8, 8))
    assert [(k, tuple(t.shape)) for k, t in v.state_dict().items()] == DEFAULT_KEYS
    torch.manual_seed(0)  # the explicit doubling multipliers are the same network, same init
    w = build_model(dataclasses.replace(cfg, channel_mult="1,2,4"), (1, 8, 8))
    pairs = zip(v.state_dict().values(), w.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize(
    ("shape", "levels", "mult"), [((3, 32, 32), 2, "1,2,2"), ((3, 64, 64), 3, "1,2,2,2")]
)
def test_larger_images_with_multipliers_and_attention(shape, levels, mult):
    cfg = ModelConfig(name="unet", channels=8, levels=levels, channel_mult=mult, attention=True)
    v = perturbed(build_model(dataclasses.replace(cfg, num_classes=3), shape))
    x, c = torch.randn(2, *shape), torch.tensor([0, 2])
    out = v(x, 0.5, c)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, v(x, 0.5, torch.tensor([1, 1])))  # the class still matters
    assert "mid_attention.qkv.weight" in v.state_dict()
    assert build_model(cfg, shape)(x, 0.5).shape == x.shape  # unconditional


def test_attention_starts_as_identity_and_is_equivariant_to_pixel_order():
    block = SelfAttention(64)  # two heads of 32 channels
    x = torch.randn(2, 64, 4, 4)
    assert block.heads == 2 and torch.equal(block(x), x)  # zero projection
    block = perturbed(block)
    perm = torch.randperm(16)
    shuffle = lambda z: z.flatten(2)[..., perm].reshape(z.shape)  # noqa: E731
    torch.testing.assert_close(block(shuffle(x)), shuffle(block(x)))  # no position: a set op
    assert not torch.allclose(block(x), x)


def count(cfg, shape=(3, 32, 32)):
    return sum(p.numel() for p in build_model(cfg, shape).parameters())


def test_parameters_grow_with_the_multipliers_and_attention():
    cfg = ModelConfig(name="unet", channels=8, levels=2)
    sizes = [count(dataclasses.replace(cfg, channel_mult=m)) for m in ("1,1,1", "1,2,2", "1,2,4")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert count(cfg) == sizes[-1]  # the default doubles
    c = 32  # a 32-channel attention block: GroupNorm (2c), qkv (3c^2 + 3c), projection (c^2 + c)
    assert count(dataclasses.replace(cfg, attention=True)) - count(cfg) == 4 * c * c + 6 * c


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"channel_mult": "1,x,2"}, "integers >= 1 such as 1,2,2, got '1,x,2'"),
        ({"channel_mult": "1,0,2"}, "integers >= 1"),
        ({"channel_mult": "1,,2"}, "integers >= 1"),
        ({"channel_mult": "1,2"}, r"levels \+ 1 = 3, got 2 in '1,2'"),
        ({"name": "mlp", "attention": True}, "--model unet only"),
        ({"name": "mlp", "channel_mult": "1,2,2"}, "--model unet only"),
        ({"attention": 1}, "--attention must be true or false"),
    ],
)
def test_bad_options_are_one_line(changes, match):
    model = dataclasses.replace(ModelConfig(name="unet"), **changes)
    with pytest.raises(FlowmatchError, match=match) as err:
        TrainConfig(data="digits-images", model=model).validate()
    assert "\n" not in str(err.value)
    if "name" not in changes and "attention" not in changes:
        with pytest.raises(FlowmatchError, match=match):
            build_model(model, (1, 8, 8))


def test_old_saved_configs_load_with_the_original_network():
    saved = TrainConfig(data="digits-images", model=ModelConfig(name="unet")).to_dict()
    del saved["model"]["channel_mult"], saved["model"]["attention"]
    cfg = TrainConfig.from_dict(saved)
    assert cfg.model.channel_mult == "" and cfg.model.attention is False


def test_a_wide_attention_unet_trains_and_resumes_exactly(tmp_path):
    threads = torch.get_num_threads()
    model = ModelConfig(name="unet", channels=8, levels=1, channel_mult="1,2", attention=True)
    cfg = TrainConfig(data="digits-images", model=model, steps=3, batch_size=8,
                      checkpoint_every=1, log_every=1, warmup_steps=1, threads=1)  # fmt: skip
    try:
        weights = assert_resume_is_exact(cfg, tmp_path, stop_after=2)
    finally:
        torch.set_num_threads(threads)
    assert any(k.endswith("mid_attention.qkv.weight") for k in weights)
    assert flowmatch.load_run(tmp_path / "part")[1].config.model.attention is True
