"""``xinit.trace`` of hand-written Flax NNX models (backends/flax/tracing.py): the spec has
the model's own state keys, is channel-first (an NHWC mean, concat and flatten become their
neutral dims), runs at another batch size, and carries the weights to PyTorch and Paddle
with a parity PASS (float64-derived verdict). Unknown ops and layer classes are named with
their path and source line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import xinit
from xinit import layers as L
from xinit.graph import Graph
from xinit.tracing import TraceError

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
nnx = pytest.importorskip("flax.nnx")


# ---- the models, as a Flax user writes them -------------------------------------------------
class BasicBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, rngs):
        # Flax's default "SAME" padding: uneven at stride 2 (a Pad node, then the conv)
        self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=stride, use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(cout, rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(cout, rngs=rngs)
        project = stride != 1 or cin != cout
        self.shortcut = (
            nnx.Sequential(
                nnx.Conv(cin, cout, (1, 1), strides=stride, use_bias=False, rngs=rngs),
                nnx.BatchNorm(cout, rngs=rngs),
            )
            if project
            else None
        )

    def __call__(self, x):
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut(x)
        return nnx.relu(y + skip)


class ResNet(nnx.Module):
    def __init__(self, rngs, classes: int = 5):
        self.stem = nnx.Conv(3, 8, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.layers = nnx.List([BasicBlock(8, 8, 1, rngs), BasicBlock(8, 16, 2, rngs)])
        self.fc = nnx.Linear(16, classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.max_pool(nnx.relu(self.bn(self.stem(x))), (2, 2), (2, 2))
        for block in self.layers:
            x = block(x)
        return self.fc(jnp.mean(x, axis=(1, 2)))


class EncoderBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, dim, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.mlp = nnx.Sequential(
            nnx.Linear(dim, 2 * dim, rngs=rngs),
            nnx.gelu,
            nnx.Dropout(0.1, rngs=rngs),
            nnx.Linear(2 * dim, dim, rngs=rngs),
        )

    def __call__(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nnx.Module):
    """A small ViT: patch conv, class token and positions as nnx.Params used in arithmetic."""

    def __init__(self, rngs, dim: int = 16, tokens: int = 4, classes: int = 5):
        self.patch = nnx.Conv(3, dim, (4, 4), strides=4, rngs=rngs)
        self.cls_token = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, 1, dim)))
        self.pos_embed = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, tokens + 1, dim)))
        self.blocks = nnx.List([EncoderBlock(dim, 2, rngs) for _ in range(2)])
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.head = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, x):
        x = self.patch(x)
        x = x.reshape(x.shape[0], -1, x.shape[-1])  # (N, H*W, D)
        cls = jnp.broadcast_to(self.cls_token[...], (x.shape[0], 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def _images(batch: int, seed: int, size: int = 8) -> np.ndarray:
    """NHWC images, as the Flax models take them."""
    return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype(np.float32)


def _randomize_stats(model) -> None:
    """BatchNorm statistics away from (0, 1), so a misplaced one shows."""
    rng = np.random.default_rng(7)
    for _, m in nnx.iter_modules(model):
        if isinstance(m, nnx.BatchNorm):
            n = m.mean.get_value().shape
            m.mean.set_value(jnp.asarray(rng.normal(0, 0.5, n), jnp.float32))
            m.var.set_value(jnp.asarray(rng.uniform(0.5, 2.0, n), jnp.float32))


def _check_ports(model, spec, size: int = 8) -> None:
    """The traced spec has the model's keys, computes what it computes at batch 3, and takes
    its weights to PyTorch and Paddle with a parity PASS."""
    from helpers import require_backends

    require_backends("torch", "paddle")
    built = xinit.build(spec, "flax")
    assert sorted(xinit.state_dict(built)) == sorted(xinit.state_dict(model))
    xinit.transfer(model, built)
    others = {}
    for fw in ("torch", "paddle"):
        others[fw] = xinit.build(spec, fw)
        xinit.transfer(model, others[fw])
    x = _images(3, seed=1, size=size).transpose(0, 3, 1, 2)  # neutral NCHW, batch 3
    report = xinit.parity({"native": model, "traced": built, **others}, x)
    assert report.ok and any(r.path == "" for r in report.rows), str(report)
    model.eval()
    native = np.asarray(model(jnp.asarray(x.transpose(0, 2, 3, 1))))
    ported = xinit.run(others["torch"], x)
    assert native.shape[0] == ported.shape[0] == 3 and ported.size == native.size


# ---- the tests -------------------------------------------------------------------------------
def test_resnet_with_batchnorm_and_residual_adds():
    model = ResNet(nnx.Rngs(0))
    _randomize_stats(model)
    spec = xinit.trace(model, _images(1, seed=0).transpose(0, 3, 1, 2))
    block = spec["layers"]["1"]
    assert isinstance(block, Graph) and block.inputs_of("add") == ("bn2", "shortcut")
    assert block["pad"] == L.Pad((0, 1, 0, 1)) and block.inputs_of("conv1") == ("pad",)
    assert spec["layers"]["0"]["conv1"].padding == (1, 1)  # "SAME" at stride 1
    assert spec["mean"] == L.Reduce("mean", (2, 3))  # NHWC axes (1, 2) -> neutral dims (2, 3)
    _check_ports(model, spec)


def test_transformer_encoder_with_class_token_and_positions(tmp_path):
    model = ViT(nnx.Rngs(0))
    spec = xinit.trace(model, _images(1, seed=0).transpose(0, 3, 1, 2))
    xinit.save_spec(spec, tmp_path / "spec.json")
    assert xinit.load_spec(tmp_path / "spec.json") == spec
    steps = dict(spec.steps)
    # the NHWC patch grid flattened in H, W order: a Permute to channel-last, then the reshape
    assert steps["permute"] == L.Permute((0, 2, 3, 1)) and steps["reshape"] == L.Reshape((4, 16))
    assert steps["cls_token"] == L.LearnedParameter((1, 1, 16), "prepend")
    assert steps["pos_embed"] == L.LearnedParameter((1, 5, 16), "add")
    block = spec["blocks"]["0"]
    assert block.inputs_of("add") == ("x", "attn")
    assert [n for n, _ in block["mlp"]["layers"].steps] == ["0", "gelu", "2", "3"]
    assert block["mlp"]["layers"]["gelu"] == L.GELU("tanh")  # jax.nn.gelu's default
    _check_ports(model, spec)
    _, report = xinit.convert(model, "paddle", _images(3, seed=2).transpose(0, 3, 1, 2))
    assert report.ok and report.spec == spec


class _Attention(nnx.Module):
    """Self-attention written by hand: split heads, matmuls, a scaled softmax, a layer-scale
    ``gamma`` used in the arithmetic."""

    def __init__(self, dim: int, heads: int, rngs):
        self.heads = heads
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.proj = nnx.LinearGeneral((heads, dim // heads), dim, axis=(-2, -1), rngs=rngs)
        self.gamma = nnx.Param(jnp.linspace(0.5, 1.5, dim))

    def __call__(self, x):
        n, length, dim = x.shape
        q, k, v = (
            t.reshape(n, length, self.heads, -1).transpose(0, 2, 1, 3)
            for t in jnp.split(self.qkv(x), 3, axis=-1)
        )
        weights = jax.nn.softmax((q @ k.swapaxes(-1, -2)) * (dim // self.heads) ** -0.5)
        out = (weights @ v).transpose(0, 2, 1, 3)  # (N, L, heads, head_dim)
        return x + self.gamma * self.proj(out)


class _Channels(nnx.Module):
    """Glue on a channel-last image: each op's axes are NHWC, the spec's dims NCHW."""

    def __init__(self, rngs):
        self.a = nnx.Conv(3, 4, (1, 1), rngs=rngs)
        self.b = nnx.Conv(3, 2, (1, 1), rngs=rngs)
        self.se = nnx.Conv(6, 6, (1, 1), rngs=rngs)
        self.attn = _Attention(6, 2, rngs)
        self.fc = nnx.Linear(6 * 4 * 4, 3, rngs=rngs)

    def __call__(self, x):
        y = jnp.concatenate([self.a(x), self.b(x)], axis=-1)  # channels
        y = y * jax.nn.hard_sigmoid(self.se(y.mean(axis=(1, 2), keepdims=True)))  # over H, W
        tokens = self.attn(y.reshape(y.shape[0], -1, y.shape[-1]))  # (N, H*W, C)
        logits = self.fc(y.reshape(y.shape[0], -1))  # H, W, C order
        pooled = 1.0 - tokens[:, 1:].mean(axis=1)
        return jnp.concatenate([logits, pooled, jnp.tanh(tokens[:, 0])], axis=1)


def test_channel_last_glue_becomes_neutral_dims():
    model = _Channels(nnx.Rngs(0))
    spec = xinit.trace(model, _images(1, seed=0, size=4).transpose(0, 3, 1, 2))
    assert spec["concat"] == L.Concat(1)
    assert spec["mean"] == L.Reduce("mean", (2, 3), keepdim=True)
    assert spec["permute"] == L.Permute((0, 2, 3, 1))  # to H, W, C: never a channel-first
    assert spec.inputs_of("flatten") == spec.inputs_of("reshape") == ("permute",)
    assert spec["flatten"] == L.Flatten() and spec["reshape"] == L.Reshape((16, 6))
    attn = spec["attn"]
    assert attn["split"] == L.Split((6, 6, 6), 2) and attn["softmax"] == L.Softmax(3)
    assert attn["gamma"] == L.LearnedTensor((6,)) and attn.inputs_of("mul_1") == ("gamma", "proj")
    # nnx.LinearGeneral over (heads, head_dim): a Flatten of those axes, then a Linear
    assert attn.inputs_of("proj") == ("flatten",) and attn["flatten"] == L.Flatten(start_dim=2)
    assert attn["proj"] == L.Linear(6, 6)
    _check_ports(model, spec, size=4)
    # the Permute is what makes it right: without it the outputs differ (a planted fault)
    nodes = [
        (n, s, ("mul",) if r == ("permute",) else r) for n, s, r in spec.nodes if n != "permute"
    ]
    wrong = Graph(nodes, inputs=spec.inputs, outputs="concat_1")
    built = xinit.build(wrong, "flax")
    xinit.transfer(model, built)
    x = _images(2, seed=3, size=4)
    model.eval()
    native = np.asarray(model(jnp.asarray(x)))
    assert np.abs(xinit.run(built, x.transpose(0, 3, 1, 2)) - native).max() > 1e-3


class _Decoder(nnx.Module):
    """A U-Net step: upsampled by jax.image.resize, joined with a skip connection."""

    def __init__(self, rngs):
        self.down = nnx.Conv(3, 4, (3, 3), strides=2, padding=1, rngs=rngs)
        self.skip = nnx.Conv(3, 4, (1, 1), rngs=rngs)
        self.out = nnx.Conv(8, 2, (3, 3), padding=1, rngs=rngs)

    def __call__(self, x):
        d = nnx.relu(self.down(x))
        n, h, w, c = d.shape
        near = jax.image.resize(d, (n, 2 * h, 2 * w, c), "nearest")
        smooth = jax.image.resize(d, (n, 2 * h, 2 * w, c), method="bilinear")
        return self.out(jnp.concatenate([near - smooth, self.skip(x)], axis=-1))


def test_resize_becomes_upsample():
    model = _Decoder(nnx.Rngs(0))
    spec = xinit.trace(model, _images(1, seed=0).transpose(0, 3, 1, 2))
    assert spec["upsample"] == L.Upsample(size=(8, 8), mode="nearest")
    assert spec["upsample_1"] == L.Upsample(size=(8, 8), mode="bilinear")
    _check_ports(model, spec)


class _Odd(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(6, 8, rngs=rngs)
        self.proj = nnx.Einsum("nd,dhk->nhk", (8, 2, 4), rngs=rngs)

    def __call__(self, x):
        h = self.fc(x)
        y = jnp.sort(h, axis=-1)  # LINE: sort
        return y + self.proj(h).reshape(x.shape[0], -1)  # LINE: proj


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.body = nnx.Linear(6, 6, rngs=rngs)
        self.head = _Odd(rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.body(x)))


def _line(tag: str) -> str:
    source, first = inspect.getsourcelines(_Odd)
    at = next(i for i, text in enumerate(source) if f"LINE: {tag}" in text)
    return f"{__file__}:{first + at}"


def test_unknown_op_and_unknown_layer_class_are_named_with_path_and_line():
    with pytest.raises(TraceError) as err:
        xinit.trace(_Net(nnx.Rngs(0)), jnp.ones((1, 6)))
    text = str(err.value)
    assert "2 unknown" in text, text
    assert f"head: jax.numpy.sort is not an operation xinit can trace  ({_line('sort')})" in text
    assert "head: proj (flax.nnx.nn.linear.Einsum) is a layer class" in text
    assert _line("proj") in text
    assert isinstance(err.value, xinit.XinitError)


def test_a_bad_input_layout_is_refused():
    with pytest.raises(xinit.ArgumentError, match="input_layout must be 'channels' or 'neutral'"):
        xinit.trace(_Net(nnx.Rngs(0)), jnp.ones((1, 6)), input_layout="nhwc")
