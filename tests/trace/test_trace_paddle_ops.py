"""The Paddle tracer's converters for a token model's and a shuffle model's glue, and its
reading of the classes a model file retypes (backends/paddle/trace_ops.py, trace_layers.py).

Each model is traced at batch 1, the spec built in Paddle and given the model's weights by
``xinit.transfer``, and run at batch 3: the outputs are bit-equal on CPU. The faults: a
retyped class or a LayerNorm subclass that computes otherwise, and an expanded parameter
used other than in a concat, are TraceErrors naming the layer path."""

from __future__ import annotations

import numpy as np
import pytest

import xinit
from xinit import layers as L
from xinit.tracing import TraceError

paddle = pytest.importorskip("paddle")
nn, F = paddle.nn, paddle.nn.functional


def _input(batch: int, shape=(3, 8, 8)) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, *shape)).astype("float32")


def _traced_bit_equal(model, shape=(3, 8, 8)):
    """The spec of ``model`` traced at batch 1; built in Paddle with its weights, the output
    at batch 3 equals the model's bit for bit."""
    paddle.seed(0)
    model.eval()
    spec = xinit.trace(model, _input(1, shape))
    built = xinit.build(spec, "paddle")
    xinit.transfer(model, built)
    built.eval()
    x = paddle.to_tensor(_input(3, shape))
    np.testing.assert_array_equal(built(x).numpy(), model(x).numpy())
    return spec


class Tokens(nn.Layer):
    """A ViT's glue in Paddle's idiom: a class token expanded over the batch and
    concatenated, positions added by hand, self-attention called as (x, x, x) and as (x),
    then the class token taken."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2D(3, 16, 4, stride=4)
        self.cls_token = self.create_parameter([1, 1, 16])
        self.pos = self.create_parameter([1, 5, 16])
        self.attn = nn.MultiHeadAttention(16, 2)
        self.attn_2 = nn.MultiHeadAttention(16, 2)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.patch(x).flatten(2)
        x = paddle.permute(x, [0, 2, 1])  # PyTorch's x.permute(0, 2, 1): a swap named permute
        x = paddle.concat([self.cls_token.expand([x.shape[0], -1, -1]), x], axis=1)
        x = x + self.pos
        x = self.attn_2(self.attn(x, x, x))
        return self.head(x[:, 0])


def test_a_class_token_positions_and_self_attention_trace_as_their_kinds():
    spec = _traced_bit_equal(Tokens())
    assert spec["cls_token"] == L.LearnedParameter((1, 1, 16), op="prepend")
    assert spec["pos"] == L.LearnedParameter((1, 5, 16), op="add")
    assert spec["permute"] == L.Permute((0, 2, 1))
    assert spec["attn"] == L.MultiheadAttention(16, 2)
    assert isinstance(spec, xinit.Sequential)  # a chain: each attention takes one input


class ExpandedTwice(nn.Layer):
    def __init__(self):
        super().__init__()
        self.token = self.create_parameter([1, 1, 8])

    def forward(self, x):
        token = self.token.expand([x.shape[0], -1, -1])
        return x.flatten(2).transpose([0, 2, 1]) * token  # not a concat: no kind says so


def test_an_expanded_parameter_used_other_than_in_concat_is_named():
    with pytest.raises(TraceError, match="parameter token expanded over the batch is used"):
        xinit.trace(ExpandedTwice(), _input(1, (8, 2, 2)))


class Shuffles(nn.Layer):
    """A ShuffleNet's and a MobileNetV3's glue: the ChannelShuffle layer and function,
    Paddle's default Hardsigmoid and PaddleOCR's slope 0.2, pads in Paddle's three list
    forms, a same-dtype cast, and transposes that permute or swap two dims."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.shuffle = nn.ChannelShuffle(2)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        y = F.channel_shuffle(self.shuffle(self.conv(x)), 4)
        y = self.gate(y) + F.hardsigmoid(y, slope=0.2, offset=0.5)
        y = F.pad(y, [1, 0, 2, 0, 0, 1])  # shorter than 2·ndim: last dim first, channels too
        y = F.pad(y, [0, 0, 0, 0, 1, 1, 0, 2])  # 2·ndim: first dim first
        y = F.pad(y, [0, 1, 1, 0, 0, 0, 0, 0], pad_from_left_axis=False)
        y = y.astype("float32").transpose([0, 2, 3, 1])
        return y.transpose([0, 1, 3, 2])


def test_shuffles_hardsigmoids_pads_and_transposes_trace_as_their_kinds():
    spec = _traced_bit_equal(Shuffles())
    assert spec["shuffle"] == L.ChannelShuffle(2)
    assert spec["channel_shuffle"] == L.ChannelShuffle(4)
    assert spec["gate"] == L.Hardsigmoid()  # Paddle's 0.1666667: the kind's default
    assert spec["hardsigmoid"] == L.Hardsigmoid(0.2, 0.5)
    assert [spec[p] for p in ("pad", "pad_1", "pad_2")] == [
        L.Pad((1, 0, 2, 0, 0, 1)),
        L.Pad((0, 2, 1, 1)),
        L.Pad((0, 1, 1, 0)),
    ]
    assert spec["permute"] == L.Permute((0, 2, 3, 1))
    assert spec["transpose"] == L.Permute((0, 1, 3, 2))


def _exported_classes() -> dict:
    """The classes xinit's Paddle code export writes into a file (LayerNorm2d, Permute,
    StochasticDepth, Swin's ShiftedWindowAttention), from the export of a small spec."""
    steps = (L.LayerNorm2d(8), L.Permute((0, 2, 3, 1)), L.StochasticDepth(0.1))
    spec = xinit.Sequential(
        ("stem", L.Conv2d(3, 8, 2, stride=2)),
        ("block", xinit.Sequential(*[(str(i), step) for i, step in enumerate(steps)])),
        ("attn", L.WindowAttention(8, (2, 2), (1, 1), 2)),
    )
    namespace: dict = {}
    exec(compile(xinit.export_code(spec, "paddle"), "model.py", "exec"), namespace)  # noqa: S102
    return namespace


class Retyped(nn.Layer):
    def __init__(self, classes: dict):
        super().__init__()
        self.stem = nn.Conv2D(3, 8, 2, stride=2)
        self.norm = classes["LayerNorm2d"](8, epsilon=1e-6)
        self.to_last = classes["Permute"]([0, 2, 3, 1])
        self.depth = classes["StochasticDepth"](0.1)
        self.attn = classes["ShiftedWindowAttention"](8, [2, 2], [1, 1], 2)

    def forward(self, x):
        return self.attn(self.depth(self.to_last(self.norm(self.stem(x)))))


def test_a_model_files_retyped_classes_are_read_as_their_kinds():
    spec = _traced_bit_equal(Retyped(_exported_classes()))
    assert spec["norm"] == L.LayerNorm2d(8, 1e-6)
    assert spec["to_last"] == L.Permute((0, 2, 3, 1))
    assert spec["depth"] == L.StochasticDepth(0.1)
    assert spec["attn"] == L.WindowAttention(8, (2, 2), (1, 1), 2)


def test_a_retyped_class_that_computes_otherwise_is_named():
    """Planted faults: the file's Permute made to flip its last dim, and its LayerNorm2d
    subclassed under another name that adds one, are named by path, not read as kinds."""
    classes = _exported_classes()
    model = Retyped(classes)

    class Permute(classes["Permute"]):
        def forward(self, x):
            return super().forward(x).flip(-1)

    class ShiftedNorm(classes["LayerNorm2d"]):
        def forward(self, x):
            return super().forward(x) + 1.0

    model.to_last, model.norm = Permute([0, 2, 3, 1]), ShiftedNorm(8, epsilon=1e-6)
    with pytest.raises(TraceError) as err:
        xinit.trace(model.eval(), _input(1))
    text = str(err.value)
    assert "layer to_last (Permute) has a forward of its own that computes other" in text
    assert "layer norm (ShiftedNorm) has a forward of its own" in text


def test_the_check_of_a_retyped_class_leaves_paddles_generator_as_it_was():
    model = Retyped(_exported_classes()).eval()
    paddle.seed(5)
    xinit.trace(model, _input(1))
    after = paddle.rand([4]).numpy()
    paddle.seed(5)
    np.testing.assert_array_equal(after, paddle.rand([4]).numpy())
