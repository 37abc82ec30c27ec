"""The shape-changing op kinds traced models need (issue 23) against each framework's own op:
reductions, matmul, split (its parts taken as ``node.k`` in a graph), slices, padding,
channel shuffle, adaptive max pooling, and average pooling with ceil_mode and Paddle's
``exclusive``. Each runs behind a conv where it takes an image, so Flax holds its input
channel-last and must map the neutral dims; values are compared as in ``test_ops.py``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend
from op_checks import assert_native, built, paddle_fn, run, torch_fn, x_of

import xinit
from xinit import layers as L
from xinit.graph import Graph


def after_conv(spec, c: int = 3) -> Graph:
    """``spec`` on a 1x1 conv's output (C -> C channels)."""
    return Graph({"conv": (L.Conv(c, c, 1), "x"), "op": spec})


def conv_args(graph: Graph) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    state = xinit.state_dict(built(graph, "torch"))
    return state, (state["conv.weight"], state["conv.bias"])


def check_after_conv(spec, fw: str, x: np.ndarray, native_of_conv) -> None:
    """``spec`` after a conv in ``fw`` against ``native_of_conv(conv(x))`` in torch."""
    torch = pytest.importorskip("torch")
    graph = after_conv(spec, x.shape[1])
    state, args = conv_args(graph)

    def native(x, w, b):
        return native_of_conv(torch.nn.functional.conv2d(x, w, b))

    out = run(graph, fw, x, state=state)
    assert out.shape == xinit.blocks.output_shape(graph, x.shape), fw
    assert_native(out, torch_fn(native), x, *args, what=f"{spec} {fw}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize(
    "op, dims, keepdim", [("mean", (2, 3), True), ("sum", 1, False), ("max", (-1, 1), False)]
)
def test_reduce(fw, op, dims, keepdim):
    def native(y):
        if op == "max":
            return y.amax(dims, keepdim)
        return getattr(y, op)(dims, keepdim=keepdim)

    check_after_conv(L.Reduce(op, dims, keepdim), fw, x_of(2, 3, 4, 5), native)


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize(
    "shapes",
    [((2, 3, 4, 5), (2, 3, 5, 6)), ((2, 1, 4, 5), (3, 5, 2)), ((2, 4, 5), (5,)), ((5,), (2, 5, 3))],
)
def test_matmul_is_torchs(fw, shapes):
    torch = pytest.importorskip("torch")
    spec = Graph({"mm": (L.MatMul(), ("a", "b"))}, inputs=("a", "b"))
    a, b = x_of(*shapes[0]), x_of(*shapes[1])
    out = run(spec, fw, a, b)
    assert out.shape == xinit.blocks.output_shape(spec, shapes)
    assert_native(out, torch_fn(torch.matmul), a, b, what=f"{shapes} {fw}")


def test_matmul_names_mismatched_sizes():
    with pytest.raises(L.SpecError, match=r"MatMul: \(2, 3\) @ \(4, 5\)"):
        L.MatMul().output_shape(((2, 3), (4, 5)))


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_split_parts_are_taken_as_node_k(fw):
    """``torch.split(conv(x), (1, 3), 1)``: part 0 scaled, part 1 softmaxed over channels,
    then joined again, in a graph that takes them as ``split.0`` and ``split.1``."""
    torch = pytest.importorskip("torch")
    graph = Graph(
        {
            "conv": (L.Conv(3, 4, 1), "x"),
            "split": (L.Split((1, 3), 1), "conv"),
            "soft": (L.Softmax(1), "split.1"),
            "scaled": (L.ScalarOp("mul", 0.5), "split.0"),
            "out": (L.Concat(1), ("soft", "scaled")),
        }
    )
    state, args = conv_args(graph)
    x = x_of(2, 3, 4, 5)

    def native(x, w, b):
        a, b_ = torch.split(torch.nn.functional.conv2d(x, w, b), (1, 3), 1)
        return torch.cat([torch.softmax(b_, 1), a * 0.5], 1)

    assert_native(run(graph, fw, x, state=state), torch_fn(native), x, *args, what=fw)


def test_split_needs_sizes_that_fill_the_dim():
    graph = Graph({"s": (L.Split((1, 1), 1), "x"), "o": (L.ReLU(), "s.2")})
    with pytest.raises(L.SpecError, match="s: Split: sizes"):
        xinit.blocks.output_shape(Graph({"s": (L.Split((1, 1), 1), "x")}), (2, 3, 4))
    with pytest.raises(L.SpecError, match="node 's' has no output '2'"):
        xinit.blocks.output_shape(graph, (2, 2, 4))


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("dim, start, stop, step", [(1, 1, None, 1), (-1, 1, -1, 2), (2, 0, 3, 2)])
def test_slice(fw, dim, start, stop, step):
    def native(y):
        index = [slice(None)] * y.ndim
        index[dim] = slice(start, stop, step)
        return y[tuple(index)]

    check_after_conv(L.Slice(dim, start, stop, step), fw, x_of(2, 4, 5, 6), native)


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize(
    "pads, mode",
    [
        ((1, 2), "constant"),
        ((1, 0, 2, 1, 1, 1), "constant"),  # the channels too
        ((2, 1, 1, 2), "reflect"),
        ((2, 1, 1, 2), "replicate"),
        ((1, 2, 2, 0), "circular"),
    ],
)
def test_pad_is_torchs(fw, pads, mode):
    torch = pytest.importorskip("torch")
    value = 0.5 if mode == "constant" else None

    def native(y):
        return torch.nn.functional.pad(y, pads, mode, value)

    check_after_conv(L.Pad(pads, mode, value or 0.0), fw, x_of(2, 3, 4, 5), native)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_is_paddles(mode):
    require_backend("paddle")
    import paddle.nn.functional as PF

    x = x_of(2, 3, 4, 5)
    pads = (2, 1, 1, 2)  # Paddle's NCHW order: left, right, top, bottom = PyTorch's
    native = paddle_fn(lambda t: PF.pad(t, list(pads), mode=mode, value=0.25))
    value = 0.25 if mode == "constant" else 0.0
    assert_native(run(L.Pad(pads, mode, value), "paddle", x), native, x, what=mode)


def test_pad_refuses_what_it_cannot_pad():
    with pytest.raises(L.SpecError, match="the batch or the channels"):
        L.Pad((1, 1, 1, 1, 1, 1), "reflect").output_shape((2, 3, 4, 5))
    with pytest.raises(L.SpecError, match="below its dim's size"):
        L.Pad((4, 0), "reflect").output_shape((2, 3, 4, 4))
    with pytest.raises(L.SpecError, match="pairs of sizes >= 0"):
        L.Pad((1, -1))


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_channel_shuffle_is_torchs(fw):
    torch = pytest.importorskip("torch")
    shuffle = torch.nn.ChannelShuffle(3)
    check_after_conv(L.ChannelShuffle(3), fw, x_of(2, 6, 3, 4), shuffle)


def test_channel_shuffle_is_paddles():
    require_backend("paddle")
    import paddle

    x = x_of(2, 6, 3, 4)
    native = paddle_fn(paddle.nn.ChannelShuffle(2))
    assert_native(run(L.ChannelShuffle(2), "paddle", x), native, x)
    with pytest.raises(L.SpecError, match="do not split into 4 groups"):
        L.ChannelShuffle(4).output_shape((2, 6, 3, 4))


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("size", [1, (2, 3), (3, 4)])
def test_adaptive_max_pool_is_torchs(fw, size):
    torch = pytest.importorskip("torch")

    def native(y):
        return torch.nn.functional.adaptive_max_pool2d(y, size)

    check_after_conv(L.AdaptiveMaxPool(size), fw, x_of(2, 3, 7, 9), native)


def test_adaptive_max_pool_is_paddles():
    require_backend("paddle")
    import paddle.nn.functional as PF

    x = x_of(2, 3, 7, 9)
    native = paddle_fn(lambda t: PF.adaptive_max_pool2d(t, [3, 4]))
    assert_native(run(L.AdaptiveMaxPool((3, 4)), "paddle", x), native, x)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_avg_pool_ceil_mode_exclusive_is_paddles_and_torchs(fw):
    """PP-LCNet's ``AvgPool2D(kernel_size=3, stride=2, padding=1, ceil_mode=True,
    exclusive=True)``: the windows cut by the padding divide by the values they hold, in
    every framework, as Paddle and torch (count_include_pad=False) do."""
    torch = pytest.importorskip("torch")
    require_backend("paddle")
    import paddle.nn.functional as PF

    x = x_of(2, 3, 6, 9)  # 9: ceil mode adds a last window that torch and Paddle both keep
    spec = L.AvgPool(3, 2, 1, ceil_mode=True, count_include_pad=False)
    out = run(spec, fw, x)
    paddle_native = paddle_fn(lambda t: PF.avg_pool2d(t, 3, 2, 1, ceil_mode=True, exclusive=True))
    torch_native = torch_fn(
        lambda t: torch.nn.functional.avg_pool2d(t, 3, 2, 1, True, count_include_pad=False)
    )
    assert out.shape == (2, 3, 4, 5)
    assert_native(out, paddle_native, x, what=f"paddle's {fw}")
    assert_native(out, torch_native, x, what=f"torch's {fw}")


def test_summary_shows_each_part_of_a_split():
    console = pytest.importorskip("rich.console").Console(width=200, record=True)
    graph = Graph(
        {"split": (L.Split((1, 3), 1), "x"), "out": (L.Concat(1), ("split.1", "split.0"))}
    )
    console.print(xinit.summary(graph, (1, 4, 4, 5)).table())
    assert "{0: 1x1x4x5, 1: 1x3x4x5}" in console.export_text()
