"""Pooling and padding where the frameworks differ by default; the neutral spec means one thing.

PyTorch's semantics are the neutral ones: stride defaults to the kernel (Flax's ``max_pool``
would use 1), ``ceil_mode`` drops a last window that would start in the right padding
(Paddle keeps it), ``count_include_pad`` is Paddle's ``not exclusive`` (Paddle's default is
exclusive, PyTorch's is inclusive), and max-pool padding never wins a max (it is -inf, not 0).
A transposed convolution's ``output_padding`` may reach the dilation when the stride is smaller
(PyTorch allows it, Paddle's layer refuses). Each case compares every backend's numbers with
``torch.nn.functional`` called directly.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend

from xinit import build, run
from xinit.blocks import Sequential, output_shape
from xinit.layers import AdaptiveAvgPool, AvgPool, MaxPool, SpecError, pool_out


def torch_reference(layer, x: np.ndarray) -> np.ndarray:
    """The layer computed by torch.nn.functional directly (not through xinit)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = torch.from_numpy(x)
    nd = layer.dims
    if isinstance(layer, AdaptiveAvgPool):
        fn = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[nd - 1]
        return fn(t, layer.output_size).numpy()
    args = (layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, MaxPool):
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nd - 1]
        return fn(t, *args, ceil_mode=layer.ceil_mode).numpy()
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nd - 1]
    return fn(
        t, *args, ceil_mode=layer.ceil_mode, count_include_pad=layer.count_include_pad
    ).numpy()


CASES = [
    # ceil_mode: the last window would start inside the right padding -> PyTorch drops it.
    ("ceil-max-drop-last", MaxPool(2, 2, 1, ceil_mode=True), (1, 2, 5, 5)),
    ("ceil-max-drop-last-7", MaxPool(2, 2, 1, ceil_mode=True), (1, 2, 7, 6)),
    ("ceil-avg-drop-last", AvgPool(2, 2, 1, ceil_mode=True), (1, 2, 5, 7)),
    ("ceil-avg-k4s3p2", AvgPool(4, 3, 2, ceil_mode=True), (1, 2, 7, 7)),
    ("ceil-max-k4s3p2", MaxPool(4, 3, 2, ceil_mode=True), (1, 2, 7, 7)),
    ("ceil-avg-s3p1", AvgPool(3, 3, 1, ceil_mode=True), (1, 2, 5, 5)),
    ("ceil-avg-exclusive", AvgPool(2, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 5, 7)),
    # ceil_mode: a kept last window that hangs over the padded input (smaller divisor).
    ("ceil-avg-overhang", AvgPool(3, 2, 1, ceil_mode=True), (1, 2, 6, 6)),
    ("ceil-avg-overhang-nopad", AvgPool(3, 2, ceil_mode=True), (1, 2, 6, 8)),
    ("ceil-max-1d", MaxPool(2, 2, 1, ceil_mode=True, dims=1), (2, 3, 9)),
    ("ceil-avg-3d", AvgPool(2, 2, 1, ceil_mode=True, dims=3), (1, 2, 5, 4, 3)),
    # count_include_pad / Paddle's exclusive.
    ("avg-include-pad", AvgPool(3, 2, 1, count_include_pad=True), (1, 2, 7, 6)),
    ("avg-exclude-pad", AvgPool(3, 2, 1, count_include_pad=False), (1, 2, 7, 6)),
    ("avg-exclude-pad-1d", AvgPool(5, 1, 2, count_include_pad=False, dims=1), (1, 2, 8)),
    ("avg-include-pad-3d", AvgPool(3, 1, 1, dims=3), (1, 1, 4, 4, 4)),
    # max-pool padding (the ResNet stem), and asymmetric kernels/strides/paddings.
    ("max-pad-stem", MaxPool(3, 2, 1), (1, 2, 9, 8)),
    ("max-tuple", MaxPool((3, 2), (1, 2), (1, 0)), (1, 2, 6, 7)),
    ("avg-tuple", AvgPool((2, 3), (2, 1), (1, 1), count_include_pad=False), (1, 2, 6, 7)),
    # stride defaults to the kernel (Flax's own pooling default would be stride 1).
    ("max-default-stride", MaxPool(3), (1, 2, 9, 10)),
    ("avg-default-stride", AvgPool(2), (1, 2, 6, 7)),
    ("max-default-stride-1d", MaxPool(3, dims=1), (1, 2, 10)),
    # adaptive average pooling: global, dividing and non-dividing output sizes.
    ("adaptive-global", AdaptiveAvgPool(1), (2, 3, 5, 7)),
    ("adaptive-divides", AdaptiveAvgPool((2, 5)), (1, 2, 6, 10)),
    ("adaptive-uneven", AdaptiveAvgPool(3), (1, 2, 7, 8)),
    ("adaptive-1d", AdaptiveAvgPool(4, dims=1), (1, 2, 9)),
]


@pytest.mark.parametrize("backend", FRAMEWORKS)
@pytest.mark.parametrize("layer,shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pool_matches_pytorch(layer, shape, backend):
    require_backend(backend)
    rng = np.random.default_rng(zlib.crc32(f"{layer}{shape}".encode()))
    # All-negative input: a max over zero padding would show up as exact zeros.
    x = -1.0 - np.abs(rng.standard_normal(shape)).astype(np.float32)
    if isinstance(layer, AvgPool):
        x = rng.standard_normal(shape).astype(np.float32)
    expected = torch_reference(layer, x)
    spec = Sequential(layer)
    assert output_shape(spec, shape) == expected.shape  # the neutral inference agrees
    got = run(build(spec, backend), x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_stride_defaults_to_kernel():
    assert MaxPool(3).stride == (3, 3)
    assert AvgPool((2, 4)).stride == (2, 4)
    assert MaxPool(2, 1).stride == (1, 1)
    assert output_shape(Sequential(MaxPool(3)), (1, 1, 9, 9)) == (1, 1, 3, 3)


def test_avg_pool_by_hand():
    """1-d input 1..5, kernel 3, stride 2, padding 1: both conventions worked out by hand."""
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 1, 5)
    incl = Sequential(AvgPool(3, 2, 1, dims=1))
    excl = Sequential(AvgPool(3, 2, 1, count_include_pad=False, dims=1))
    for backend in FRAMEWORKS:
        require_backend(backend)
        np.testing.assert_allclose(run(build(incl, backend), x)[0, 0], [1.0, 3.0, 3.0], rtol=1e-6)
        np.testing.assert_allclose(run(build(excl, backend), x)[0, 0], [1.5, 3.0, 4.5], rtol=1e-6)


def test_ceil_mode_by_hand():
    """Length 5, kernel 2, stride 2, padding 1, ceil_mode: windows start at -1, 1, 3; a fourth
    would start at 5, inside the right padding, and PyTorch (so xinit) drops it."""
    assert pool_out(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_out(5, 2, 2, 1, ceil_mode=False) == 3
    assert pool_out(6, 3, 2, 0, ceil_mode=True) == 3  # kept: starts at 4, inside the input
    assert pool_out(6, 3, 2, 0, ceil_mode=False) == 2
    x = np.array([[[3.0, -1.0, 4.0, -1.0, 5.0]]], np.float32)
    spec = Sequential(MaxPool(2, 2, 1, ceil_mode=True, dims=1))
    for backend in FRAMEWORKS:
        require_backend(backend)
        np.testing.assert_array_equal(run(build(spec, backend), x)[0, 0], [3.0, 4.0, 5.0])


def test_pool_padding_limits():
    with pytest.raises(SpecError, match="at most half the kernel"):
        MaxPool(2, 2, 2)
    with pytest.raises(SpecError, match="larger than the padded input"):
        output_shape(Sequential(MaxPool(5)), (1, 1, 3, 3))


TRANSPOSE_CASES = [
    # output_padding must be < max(stride, dilation) in PyTorch; Paddle wants < stride.
    ("op-below-dilation", dict(kernel_size=1, stride=1, dilation=2, output_padding=1), 1),
    (
        "op-beyond-padding",
        dict(kernel_size=3, stride=2, padding=0, dilation=3, output_padding=2),
        2,
    ),
    (
        "op-inside-padding",
        dict(kernel_size=3, stride=1, padding=2, dilation=2, output_padding=1),
        2,
    ),
    ("grouped-op", dict(kernel_size=2, stride=2, padding=1, output_padding=1, groups=2), 2),
    ("plain-3d", dict(kernel_size=2, stride=2, padding=0), 3),
]


@pytest.mark.parametrize("backend", FRAMEWORKS)
@pytest.mark.parametrize(
    "kw,dims", [c[1:] for c in TRANSPOSE_CASES], ids=[c[0] for c in TRANSPOSE_CASES]
)
def test_conv_transpose_output_padding(kw, dims, backend):
    """Transposed convolutions with PyTorch's output_padding rule, in every backend."""
    from xinit.layers import ConvTranspose

    require_backend(backend)
    torch = pytest.importorskip("torch")
    layer = ConvTranspose(2, 4, dims=dims, **kw)
    shape = (2, 2, *(4, 3, 3)[:dims])
    x = np.random.default_rng(dims).standard_normal(shape).astype(np.float32)
    module = build(Sequential(("up", layer)), backend, seed=3, rng="xinit")
    ref = build(Sequential(("up", layer)), "torch", seed=3, rng="xinit")  # same weights
    conv = ref.up
    fn = (
        torch.nn.functional.conv_transpose1d,
        torch.nn.functional.conv_transpose2d,
        torch.nn.functional.conv_transpose3d,
    )[dims - 1]
    with torch.no_grad():
        expected = fn(
            torch.from_numpy(x),
            conv.weight,
            conv.bias,
            layer.stride,
            layer.padding,
            layer.output_padding,
            layer.groups,
            layer.dilation,
        ).numpy()
    assert output_shape(Sequential(layer), shape) == expected.shape
    np.testing.assert_allclose(run(module, x), expected, rtol=1e-5, atol=1e-5)
