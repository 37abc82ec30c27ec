"""paddle -> spec -> torch and flax: ``xinit.trace`` on Paddle models (backends/paddle/tracing.py).

Each model is traced at batch 1 (run at batch 3), the spec is built in Paddle with the
model's own state keys and its weights (outputs equal to the model's), then built in torch and
Flax, given the same weights by ``xinit.transfer`` and compared layer by layer with
``xinit.parity`` (the float64-derived verdict). The models: every ``paddle.vision.models``
family, and PaddleOCR-style recognisers retyped below from PaddleOCR's
``ppocr/modeling/backbones/rec_lcnetv3.py`` and ``rec_mv1_enhance.py`` (structure only: a
LearnableAffineBlock's ``self.scale * x + self.bias``, a re-parameterisable block summing
parallel conv+BN branches from ``out = 0``, SE with ``F.hardsigmoid(slope=0.2)``, a BatchNorm
with a fused ``act="hard_swish"``, a BiLSTM neck and a CTC head).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import xinit
from xinit.tracing import TraceError

paddle = pytest.importorskip("paddle")
nn, F = paddle.nn, paddle.nn.functional
M = paddle.vision.models


def _seeded(make):
    paddle.seed(0)
    model = make()
    model.eval()
    return model


# name -> (factory, input side). Small widths where the family takes a scale.
FAMILIES = {
    "resnet18": (lambda: M.resnet18(num_classes=10), 32),
    "mobilenet_v1": (lambda: M.mobilenet_v1(scale=0.25, num_classes=10), 32),
    "mobilenet_v2": (lambda: M.mobilenet_v2(scale=0.25, num_classes=10), 32),
    "mobilenet_v3_small": (lambda: M.mobilenet_v3_small(scale=0.5, num_classes=10), 32),
    "shufflenet_v2_x0_25": (lambda: M.shufflenet_v2_x0_25(num_classes=10), 32),
    "squeezenet1_0": (lambda: M.squeezenet1_0(num_classes=10), 64),
    "vgg11": (lambda: _thin_vgg(M.vgg11(num_classes=10)), 32),
    "densenet121": (lambda: M.densenet121(num_classes=10), 32),
    "googlenet": (lambda: M.googlenet(num_classes=10), 192),  # its aux heads need 192
    "inception_v3": (lambda: M.inception_v3(num_classes=10), 96),
}
SLOW = {"vgg11", "densenet121", "googlenet", "inception_v3"}  # big or deep: minutes in CI
FLAX_FAST = {"resnet18"}  # the other families' Flax runs compile for minutes: marked slow


def _thin_vgg(model):
    """VGG's own classifier is 25088 -> 4096 -> 4096 (120M parameters, gigabytes in a parity
    run): the same layers with 64 hidden units."""
    model.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 64), nn.ReLU(),
        nn.Dropout(), nn.Linear(64, 10),
    )  # fmt: skip
    return model


def _input(side: int, batch: int = 1, channels: int = 3, height: int | None = None):
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, channels, height or side, side)).astype("float32")


@functools.lru_cache(maxsize=2)  # a model's tests run together; big ones are not kept
def _traced(name: str):
    """(model, spec, paddle build with the model's weights, batch-3 input), once per model."""
    make, side = CASES[name]
    model = _seeded(make)
    x1 = _input(side) if isinstance(side, int) else _input(side[1], height=side[0])
    spec = xinit.trace(model, x1)
    built = xinit.build(spec, "paddle")
    xinit.transfer(model, built, strict=name not in UNCALLED)
    built.eval()
    x3 = np.concatenate([x1, 0.5 * x1[:, ::-1].copy(), -x1])
    return model, spec, built, x3


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


# Layers the forward never calls add nothing to the spec: PPLCNetV3's LearnableRepLayer of
# stride 2 skips its ``act`` (and its LearnableAffineBlock).
UNCALLED = {"lcnetv3_tiny": {"blocks.1.act.lab.scale", "blocks.1.act.lab.bias"}}


def _check_paddle(name: str):
    model, _, built, x3 = _traced(name)
    own = {k for k in model.state_dict() if k not in UNCALLED.get(name, ())}
    keys = list(built.state_dict())  # in call order (PPLCNetV3 calls conv_1x1 first)
    assert set(keys) == own and len(keys) == len(own)
    for a, b in zip(_tuple(model(paddle.to_tensor(x3))), _tuple(built(paddle.to_tensor(x3)))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # the same kernels in one framework


def _tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _check_target(name: str, framework: str):
    model, spec, built, x3 = _traced(name)
    target = xinit.build(spec, framework)
    strict = name not in UNCALLED
    report = xinit.transfer(model, target, strict=strict)  # from the native model, by name
    assert not report.missing and set(report.unexpected) == UNCALLED.get(name, set())
    parity = xinit.parity({"paddle": built, framework: target}, x3)
    assert parity.ok, parity


# ---- PaddleOCR-style models (retyped structure) ------------------------------------------
class LearnableAffineBlock(nn.Layer):
    """rec_lcnetv3.py: a learned scalar scale and bias used in the layer's own arithmetic."""

    def __init__(self, scale_value=1.0, bias_value=0.0):
        super().__init__()
        self.scale = self.create_parameter(
            [1], default_initializer=nn.initializer.Constant(scale_value)
        )
        self.bias = self.create_parameter(
            [1], default_initializer=nn.initializer.Constant(bias_value)
        )

    def forward(self, x):
        return self.scale * x + self.bias


class ConvBNLayer(nn.Layer):
    def __init__(self, cin, cout, k, stride, groups=1):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class Act(nn.Layer):
    def __init__(self, act="hswish"):
        super().__init__()
        self.act = nn.Hardswish() if act == "hswish" else nn.ReLU()
        self.lab = LearnableAffineBlock(1.2, 0.1)

    def forward(self, x):
        return self.lab(self.act(x))


class LearnableRepLayer(nn.Layer):
    """rec_lcnetv3.py: identity BN + 1x1 conv+BN + a LayerList of kxk conv+BN branches, summed
    from ``out = 0``, then a LearnableAffineBlock and the activation."""

    def __init__(self, cin, cout, k, stride=1, groups=1, branches=2):
        super().__init__()
        self.stride = stride
        self.identity = nn.BatchNorm2D(cin) if cin == cout and stride == 1 else None
        self.conv_kxk = nn.LayerList(
            [ConvBNLayer(cin, cout, k, stride, groups) for _ in range(branches)]
        )
        self.conv_1x1 = ConvBNLayer(cin, cout, 1, stride, groups) if k > 1 else None
        self.lab = LearnableAffineBlock()
        self.act = Act()

    def forward(self, x):
        out = 0
        if self.identity is not None:
            out += self.identity(x)
        if self.conv_1x1 is not None:
            out += self.conv_1x1(x)
        for conv in self.conv_kxk:
            out += conv(x)
        out = self.lab(out)
        if self.stride != 2:
            out = self.act(out)
        return out


class SELayer(nn.Layer):
    """rec_lcnetv3.py's SE: pool, 1x1 convs, ReLU, Hardsigmoid, ``paddle.multiply``."""

    def __init__(self, channel, reduction=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channel, channel // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channel // reduction, channel, 1)
        self.hardsigmoid = nn.Hardsigmoid()

    def forward(self, x):
        identity = x
        x = self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))
        return paddle.multiply(x=identity, y=x)


class LCNetV3Tiny(nn.Layer):
    """A PPLCNetV3-shaped recogniser: stem, two rep blocks (one with SE), a learned position
    table added by hand, then a sequence head (mean over height, Linear, softmax)."""

    def __init__(self, classes=11):
        super().__init__()
        self.conv1 = ConvBNLayer(3, 8, 3, 2)
        self.blocks = nn.Sequential(
            LearnableRepLayer(8, 8, 3, groups=8),
            LearnableRepLayer(8, 16, 3, stride=2),
        )
        self.se = SELayer(16)
        self.pos_embed = self.create_parameter(
            [1, 16, 1, 8], default_initializer=nn.initializer.Normal(std=0.02)
        )
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.se(self.blocks(self.conv1(x))) + self.pos_embed
        x = x.mean(axis=2).transpose([0, 2, 1])
        return F.softmax(self.fc(x), axis=2)


class MV1ConvBN(nn.Layer):
    """rec_mv1_enhance.py's ConvBNLayer: a conv and ``nn.BatchNorm(act="hard_swish")``."""

    def __init__(self, cin, k, cout, stride, padding, groups=1):
        super().__init__()
        self._conv = nn.Conv2D(cin, cout, k, stride, padding, groups=groups, bias_attr=False)
        self._batch_norm = nn.BatchNorm(cout, act="hard_swish")

    def forward(self, x):
        return self._batch_norm(self._conv(x))


class SEModule(nn.Layer):
    def __init__(self, channel, reduction=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channel, channel // reduction, 1)
        self.conv2 = nn.Conv2D(channel // reduction, channel, 1)

    def forward(self, inputs):
        x = self.conv2(F.relu(self.conv1(self.avg_pool(inputs))))
        return inputs * F.hardsigmoid(x, slope=0.2, offset=0.5)


class DepthwiseSeparable(nn.Layer):
    def __init__(self, cin, cout, stride, use_se=False):
        super().__init__()
        self.use_se = use_se
        self._depthwise_conv = MV1ConvBN(cin, 3, cin, stride, 1, groups=cin)
        if use_se:
            self._se = SEModule(cin)
        self._pointwise_conv = MV1ConvBN(cin, 1, cout, 1, 0)

    def forward(self, x):
        y = self._depthwise_conv(x)
        if self.use_se:
            y = self._se(y)
        return self._pointwise_conv(y)


class CRNNTiny(nn.Layer):
    """MobileNetV1Enhance (narrow) + Im2Seq + a 2-layer BiLSTM + CTC head, as PaddleOCR's
    rec_mv1_enhance.py, rnn.py (Im2Seq, EncoderWithRNN) and rec_ctc_head.py compose them."""

    def __init__(self, classes=11):
        super().__init__()
        self.conv1 = MV1ConvBN(3, 3, 8, 2, 1)
        self.block_list = nn.Sequential(
            DepthwiseSeparable(8, 16, 1),
            DepthwiseSeparable(16, 16, (2, 1), use_se=True),
        )
        self.pool = nn.MaxPool2D(kernel_size=2, stride=2, padding=0)
        self.lstm = nn.LSTM(16, 12, direction="bidirectional", num_layers=2)
        self.fc = nn.Linear(24, classes)

    def forward(self, x):
        y = self.pool(self.block_list(self.conv1(x)))
        y = y.squeeze(axis=2).transpose([0, 2, 1])  # Im2Seq: (N, C, 1, W) -> (N, W, C)
        y, _ = self.lstm(y)
        return F.softmax(self.fc(y), axis=2)


class SVTRAttention(nn.Layer):
    """rec_svtrnet.py's global Attention: a packed qkv Linear, reshaped with 0 (copy the
    batch), transposed so q, k, v are ``qkv[0..2]``, softmax(q k^T) v, a projection."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.head_dim, self.dim = num_heads, dim // num_heads, dim
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        qkv = self.qkv(x).reshape((0, -1, 3, self.num_heads, self.head_dim))
        qkv = qkv.transpose((2, 0, 3, 1, 4))
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = self.attn_drop(F.softmax(q.matmul(k.transpose((0, 1, 3, 2))), axis=-1))
        x = attn.matmul(v).transpose((0, 2, 1, 3)).reshape((0, -1, self.dim))
        return self.proj(x)


class SVTRBlock(nn.Layer):
    """rec_svtrnet.py's Block with prenorm=True (SVTR-Tiny's): norm after each residual."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.mixer = SVTRAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-6)

    def forward(self, x):
        x = self.norm1(x + self.mixer(x))
        return self.norm2(x + self.mlp(x))


class SVTRTiny(nn.Layer):
    """An SVTR-Tiny-shaped recogniser (rec_svtrnet.py): a two-conv patch embedding with
    GELU, a position table added by hand, a LayerList of global-mixing blocks iterated in
    forward, SVTR's last stage (adaptive pool to one row, 1x1 conv, Hardswish, Paddle's
    downscale_in_infer dropout) and a CTC head."""

    def __init__(self, dim=16, classes=11):
        super().__init__()
        self.patch_embed = nn.Sequential(
            nn.Conv2D(3, dim // 2, 3, 2, 1), nn.BatchNorm2D(dim // 2), nn.GELU(),
            nn.Conv2D(dim // 2, dim, 3, 2, 1), nn.BatchNorm2D(dim), nn.GELU(),
        )  # fmt: skip
        self.pos_embed = self.create_parameter(
            [1, 16, dim], default_initializer=nn.initializer.Normal(std=0.02)
        )
        self.blocks1 = nn.LayerList([SVTRBlock(dim, 2) for _ in range(2)])
        self.avg_pool = nn.AdaptiveAvgPool2D([1, 8])
        self.last_conv = nn.Conv2D(dim, 24, 1, bias_attr=False)
        self.hardswish = nn.Hardswish()
        self.dropout = nn.Dropout(p=0.1, mode="downscale_in_infer")
        self.fc = nn.Linear(24, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose((0, 2, 1)) + self.pos_embed
        for blk in self.blocks1:
            x = blk(x)
        x = self.avg_pool(x.transpose([0, 2, 1]).reshape([0, 16, 2, 8]))
        x = self.dropout(self.hardswish(self.last_conv(x)))
        x = x.squeeze(axis=2).transpose([0, 2, 1])
        return F.softmax(self.fc(x), axis=2)


OCR = {
    "lcnetv3_tiny": (LCNetV3Tiny, (16, 32)),
    "crnn_tiny": (CRNNTiny, (8, 32)),
    "svtr_tiny": (SVTRTiny, (8, 32)),
    # tests/reference_paddleocr.py's retyped PaddleOCR models, where that file is present
    "ref_mv1_crnn": (
        lambda: _reference().mv1_crnn(out_channels=11, scale=0.25, hidden_size=16, mid_channels=16),
        (32, 64),
    ),
    "ref_lcnetv3_svtr": (
        lambda: _reference().lcnetv3_svtr(
            out_channels=11, scale=0.25, conv_kxk_num=2, dims=16, hidden_dims=16
        ),
        (48, 64),
    ),
}


def _reference():
    return pytest.importorskip("reference_paddleocr", reason="tests/reference_paddleocr.py")


CASES = {**FAMILIES, **OCR}


def _marks(name: str, framework: str | None = None):
    heavy = (name in FAMILIES and name not in FLAX_FAST) or name.startswith("ref_")
    slow = name in SLOW or (framework == "flax" and heavy)
    return [pytest.mark.slow] if slow else []


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in CASES])
def test_traced_spec_builds_in_paddle_with_the_models_keys_and_outputs(name):
    _check_paddle(name)


@pytest.mark.parametrize(
    "name,framework",
    [
        pytest.param(n, fw, marks=_marks(n, fw), id=f"{n}-{fw}")
        for n in CASES
        for fw in ("torch", "flax")
    ],
)
def test_traced_spec_ports_to_another_framework_with_parity(name, framework):
    pytest.importorskip({"torch": "torch", "flax": "flax"}[framework])
    _check_target(name, framework)


# ---- errors, batch, clean-up -----------------------------------------------------------------
class CumulativeHead(nn.Layer):
    def forward(self, x):
        return paddle.cumsum(x, axis=1)  # no neutral kind: the trace names this line


class Odd(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)  # a paddle.nn layer class xinit does not know
        self.head = CumulativeHead()

    def forward(self, x):
        if x.numel() > 0:  # an untraceable op used only for control flow is no error
            x = self.conv(x)
        return self.head(self.shuffle(x))


def _line(text: str) -> int:
    """The line number of ``text`` in this file (where the trace must point)."""
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


def test_unknown_layer_class_and_op_are_named_with_path_and_line():
    model = _seeded(Odd)
    with pytest.raises(TraceError) as err:
        xinit.trace(model, _input(8))
    text = str(err.value)
    assert "2 unknown" in text, text
    assert "layer shuffle (PixelShuffle, paddle.nn.layer.vision): a layer class xinit" in text
    assert f"test_trace_paddle.py:{_line('return self.head(self.shuffle(x))')}" in text
    assert "head: paddle's cumsum is not an operation xinit can trace" in text
    assert f"test_trace_paddle.py:{_line('return paddle.cumsum(x, axis=1)')}" in text
    assert isinstance(err.value, xinit.XinitError)


def test_the_trace_leaves_no_hook_or_wrapper_behind():
    model = _seeded(Odd)
    add, flatten, relu = paddle.Tensor.__add__, paddle.Tensor.flatten, F.relu
    with pytest.raises(TraceError):
        xinit.trace(model, _input(8))
    assert (paddle.Tensor.__add__, paddle.Tensor.flatten, F.relu) == (add, flatten, relu)
    assert all(not m._forward_pre_hooks and not m._forward_post_hooks for m in model.sublayers())
    assert model.training is False


class Reshaper(nn.Layer):
    """Batch-dependent glue: reshape by ``x.shape[0]``, by -1, and a squeeze."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(4 * 4 * 4, 6)

    def forward(self, x):
        y = self.conv(x)
        pooled = paddle.squeeze(self.pool(y), axis=[2, 3])
        flat = paddle.reshape(y, [y.shape[0], -1])
        return self.fc(flat.reshape([-1, 64])) + paddle.concat([pooled, pooled[:, :2]], axis=1)


def test_a_spec_traced_at_batch_1_runs_at_other_batches():
    model = _seeded(Reshaper)
    spec = xinit.trace(model, _input(8))
    built = xinit.build(spec, "paddle")
    xinit.transfer(model, built)
    built.eval()
    for batch in (3, 5):
        x = paddle.to_tensor(_input(8, batch))
        np.testing.assert_array_equal(model(x).numpy(), built(x).numpy())


def test_a_batch_mixing_reshape_is_refused():
    class Mixer(nn.Layer):
        def forward(self, x):
            return paddle.reshape(x, [-1, 3 * 8 * 4]).sum(axis=1)

    with pytest.raises(TraceError, match="reshape: .*batch"):
        xinit.trace(_seeded(Mixer), _input(8))


def test_convert_traces_a_paddle_model_with_no_spec_given():
    """``xinit.convert`` on a Paddle model alone: traced here, built in torch, PASS."""
    pytest.importorskip("torch")
    model = _seeded(CRNNTiny)
    module, report = xinit.convert(model, "torch", _input(32, height=8))
    assert report.ok, report.summary()
    lstm = dict(module.named_parameters())["lstm.weight_ih_l0"].detach().numpy()
    np.testing.assert_array_equal(lstm, model.lstm.weight_ih_l0.numpy())
