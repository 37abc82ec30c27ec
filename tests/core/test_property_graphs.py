"""Property-based: random small graphs with branches, concatenation, sums, products and
upsampling build in torch, paddle and flax with the same output shapes and values.

Each draw grows a graph node by node from the input: a 3x3 conv, a ReLU, a 2x2 max pool,
an Upsample (nearest x2, bilinear x2 or to a size, align_corners either way) of any earlier
node, or a concat / add / mul of earlier nodes of matching shapes (so branches and skips
form), and returns two nodes as a dict. Sizes are tiny and few (1-2 channels, 2-8 pixels):
eager JAX compiles each op once per shape, which is most of the ~15 s the 200 draws take.
Weights are ``rng="xinit"``, identical in every framework.
"""

from __future__ import annotations

import numpy as np
from helpers import FRAMEWORKS, require_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xinit
from xinit.blocks import infer
from xinit.graph import Graph
from xinit.layers import Add, Concat, Conv, MaxPool, Mul, ReLU, Upsample


@st.composite
def graphs(draw):
    c0 = draw(st.integers(1, 2))
    h, w = 4, draw(st.sampled_from([2, 4]))
    shapes = {"x": (c0, h, w)}
    nodes = []
    for i in range(draw(st.integers(2, 6))):
        names = list(shapes)
        src = draw(st.sampled_from(names))
        c, sh, sw = shapes[src]
        op = draw(st.sampled_from(["conv", "relu", "pool", "up", "merge", "merge"]))
        name = f"n{i}"
        if op == "merge":
            same = [n for n in names if shapes[n][1:] == (sh, sw)]
            other = draw(st.sampled_from(same))
            kind = draw(st.sampled_from(["concat", "add", "mul"]))
            if kind != "concat" and shapes[other] != shapes[src]:
                kind = "concat"
            spec = {"concat": Concat(1), "add": Add(), "mul": Mul()}[kind]
            nodes.append((name, spec, (src, other)))
            shapes[name] = (c + shapes[other][0] if kind == "concat" else c, sh, sw)
            continue
        if op == "pool" and sh % 2 == 0 and sw % 2 == 0:
            spec, out = MaxPool(2), (c, sh // 2, sw // 2)
        elif op == "up" and sh * sw <= 16:
            mode = draw(st.sampled_from(["nearest", "bilinear", "size"]))
            if mode == "nearest":
                spec, out = Upsample(scale_factor=2), (c, 2 * sh, 2 * sw)
            else:
                align = draw(st.booleans())
                if mode == "size":
                    oh, ow = draw(st.sampled_from([(3, 5), (5, 3)]))
                    spec = Upsample(size=(oh, ow), mode="bilinear", align_corners=align)
                    out = (c, oh, ow)
                else:
                    spec = Upsample(scale_factor=2, mode="bilinear", align_corners=align)
                    out = (c, 2 * sh, 2 * sw)
        elif op == "conv":
            cout = draw(st.integers(1, 2))
            spec, out = Conv(c, cout, 3, padding=1), (cout, sh, sw)
        else:
            spec, out = ReLU(), (c, sh, sw)
        nodes.append((name, spec, (src,)))
        shapes[name] = out
    last = nodes[-1][0]
    other = draw(st.sampled_from([n for n, _, _ in nodes]))
    return Graph(nodes, outputs={"out": last, "aux": other}), (1, *shapes["x"])


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(graphs(), st.integers(0, 2**16))
def test_random_graphs_agree_across_frameworks(drawn, seed):
    for b in FRAMEWORKS:
        require_backend(b)
    spec, shape = drawn
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    want = infer(spec, shape)[-1].output_shape
    ref = None
    for b in FRAMEWORKS:
        out = xinit.run(xinit.build(spec, b, seed=seed, rng="xinit"), x)
        assert {k: v.shape for k, v in out.items()} == want, b
        if ref is None:
            ref = out
            continue
        for k in ref:
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=f"{b} {k}")
