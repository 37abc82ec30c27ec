"""Property-based: random small specs build in torch, paddle and flax and agree.

Hypothesis draws chains (1-, 2- and 3-d) of convolutions (random kernel, stride, padding,
dilation, groups, bias), transposed convolutions, max/avg pools (ceil_mode,
count_include_pad, padding, default stride), adaptive pools, BatchNorm, activations, Dropout
and residual blocks (identity or 1x1-conv shortcut), optionally ending in Flatten + Linear.
A draw the neutral inference rejects (``SpecError``) is discarded with ``assume``; every
other one is built in the three frameworks with the same weights (``rng="xinit"``) and
traced: each layer's output shape equals ``blocks.infer`` in every framework, and the values
agree with torch's layer by layer.
"""

from __future__ import annotations

import itertools

import numpy as np
from helpers import FRAMEWORKS, require_backend
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xinit import build, kinds
from xinit.blocks import Residual, Sequential, infer, output_shape
from xinit.layers import (
    GELU,
    AdaptiveAvgPool,
    AvgPool,
    BatchNorm,
    Conv,
    ConvTranspose,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    MaxPool,
    ReLU,
    SiLU,
    SpecError,
)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same 200 examples on every run and machine
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# every element-wise activation kind of the table (a new one is drawn too), plus variants
ACTIVATIONS = [
    *(kinds.get(kind).spec() for kind in kinds.activations()),
    LeakyReLU(0.2),
    GELU("tanh"),
    Dropout(0.3),
]


def per_dim(draw, dims, values):
    """An int, or (sometimes) a tuple of ``dims`` independent ints."""
    if dims > 1 and draw(st.booleans()):
        return tuple(draw(values) for _ in range(dims))
    return draw(values)


@st.composite
def conv(draw, cin: int, dims: int) -> Conv:
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    if cin % groups:
        groups = 1
    cout = groups * draw(st.integers(1, 3))
    return Conv(
        cin,
        cout,
        per_dim(draw, dims, st.integers(1, 4)),
        stride=per_dim(draw, dims, st.integers(1, 3)),
        padding=per_dim(draw, dims, st.integers(0, 2)),
        dilation=per_dim(draw, dims, st.sampled_from([1, 1, 2])),
        groups=groups,
        bias=draw(st.booleans()),
        dims=dims,
    )


@st.composite
def conv_transpose(draw, cin: int, dims: int) -> ConvTranspose:
    groups = 2 if cin % 2 == 0 and draw(st.booleans()) else 1
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2))
    return ConvTranspose(
        cin,
        groups * draw(st.integers(1, 2)),
        draw(st.integers(1, 3)),
        stride=stride,
        padding=draw(st.integers(0, 1)),
        output_padding=draw(st.integers(0, max(stride, dilation) - 1)),
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        dims=dims,
    )


@st.composite
def pool(draw, dims: int):
    k = draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))  # None: the kernel, as PyTorch
    padding = draw(st.integers(0, k // 2))
    ceil_mode = draw(st.booleans())
    if draw(st.booleans()):
        return MaxPool(k, stride, padding, ceil_mode=ceil_mode, dims=dims)
    return AvgPool(
        k, stride, padding, ceil_mode=ceil_mode, count_include_pad=draw(st.booleans()), dims=dims
    )


@st.composite
def residual(draw, cin: int, dims: int) -> Residual:
    """A BasicBlock-like block; an even kernel or a missing shortcut may make it invalid."""
    planes = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 2))
    k = draw(st.sampled_from([1, 3, 3, 2]))
    body = Sequential(
        ("conv1", Conv(cin, planes, k, stride, k // 2, bias=False, dims=dims)),
        ("bn1", BatchNorm(planes, dims=dims)),
        ("relu", ReLU()),
        ("conv2", Conv(planes, planes, 3, 1, 1, bias=False, dims=dims)),
        ("bn2", BatchNorm(planes, dims=dims)),
    )
    shortcut = None
    if stride != 1 or cin != planes or draw(st.booleans()):
        shortcut = Sequential(
            Conv(cin, planes, 1, stride, bias=False, dims=dims), BatchNorm(planes, dims=dims)
        )
    if draw(st.integers(0, 9)) == 0:
        shortcut = None  # now and then an identity shortcut that does not fit: filtered out
    activation = draw(st.sampled_from([ReLU(), SiLU(), None]))
    name = "relu" if activation == ReLU() else "act"  # torchvision's shared relu, or its own
    return Residual(body, shortcut, activation=activation, activation_name=name)


@st.composite
def specs(draw):
    """(spec, input shape) for a small random network."""
    dims = draw(st.sampled_from([1, 2, 2, 3]))
    top = {1: 14, 2: 10, 3: 6}[dims]
    c = draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 2)), c, *(draw(st.integers(2, top)) for _ in range(dims)))
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        choice = draw(st.sampled_from(["conv", "conv", "pool", "bn", "act", "res", "convT"]))
        if choice == "conv":
            layer = draw(conv(c, dims))
        elif choice == "convT":
            layer = draw(conv_transpose(c, dims))
        elif choice == "pool":
            layer = draw(pool(dims))
        elif choice == "bn":
            layer = BatchNorm(c, eps=draw(st.sampled_from([1e-5, 1e-3])), dims=dims)
        elif choice == "act":
            layer = draw(st.sampled_from(ACTIVATIONS))
        else:
            layer = draw(residual(c, dims))
        steps.append(layer)
        c = getattr(layer, "out_channels", c)
        if isinstance(layer, Residual):
            c = layer.body["bn2"].num_features
    if draw(st.booleans()):
        steps.append(AdaptiveAvgPool(draw(st.integers(1, 2)), dims=dims))
    spec = Sequential(*steps)
    if draw(st.booleans()):
        try:
            features = int(np.prod(output_shape(spec, shape)[1:]))
        except SpecError:
            features = 1  # the body is invalid anyway; the test filters it
        head = Sequential(("flatten", Flatten()), ("fc", Linear(features, draw(st.integers(1, 5)))))
        spec = Sequential(("body", spec), ("head", head))
    return spec, shape


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1.0))


_EXAMPLES = itertools.count()
FLAX_VALUES_EVERY = 2  # Flax compiles every op for every new shape: values on 1 draw in 2


@SETTINGS
@given(case=specs(), seed=st.integers(0, 2**16))
def test_random_specs_agree_in_three_frameworks(case, seed):
    spec, shape = case
    try:
        rows = infer(spec, shape)
    except SpecError:
        assume(False)
    expected = {row.path: row.output_shape for row in rows}
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    modules = {b: build(spec, b, seed=seed, rng="xinit") for b in FRAMEWORKS if require_backend(b)}
    traces = {b: require_backend(b).trace(modules[b], x) for b in ("torch", "paddle")}
    if next(_EXAMPLES) % FLAX_VALUES_EVERY == 0:
        traces["flax"] = require_backend("flax").trace(modules["flax"], x)
    for backend in FRAMEWORKS:
        if backend in traces:
            observed = {path: traces[backend][path].shape for path in expected}
        else:  # shapes by JAX's abstract evaluation of the same Flax module
            shapes = require_backend(backend).trace_shapes(modules[backend], x)
            observed = {path: shapes[path] for path in expected}
        assert observed == expected, (backend, spec, shape)
    for backend in traces.keys() - {"torch"}:
        for path in expected:
            diff = rel_diff(traces[backend][path], traces["torch"][path])
            assert diff <= 1e-4, (backend, path, diff, spec, shape)
