"""Graphs: named nodes with explicit inputs, merges, upsampling, several inputs and outputs,
built and run with the same values in every framework, and the bad graphs refused before
anything is built."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend, require_backends

import xinit
from xinit.blocks import Sequential, infer, param_specs
from xinit.graph import Graph
from xinit.layers import (
    Add,
    BatchNorm,
    Concat,
    Conv,
    Linear,
    MaxPool,
    Mul,
    ReLU,
    SpecError,
    Upsample,
)
from xinit.state import load_state_dict, state_dict, transfer


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def head(cin, cout):
    return Sequential(Conv(cin, 8, 3, padding=1), ReLU(), Conv(8, cout, 1))


def two_heads():
    """A CenterNet-like graph: a stem, a skip concatenated back, two heads as a dict."""
    return Graph(
        {
            "stem": Sequential(Conv(3, 4, 3, padding=1), BatchNorm(4), ReLU()),
            "down": MaxPool(2),
            "mid": Conv(4, 4, 3, padding=1),
            "up": Upsample(scale_factor=2),
            "cat": (Concat(1), ("stem", "up")),
            "hm": (head(8, 3), "cat"),
            "wh": (head(8, 2), "cat"),
        },
        outputs={"hm": "hm", "wh": "wh"},
    )


def test_parameter_paths_are_node_names_in_listing_order():
    keys = list(param_specs(two_heads()))
    assert keys[:2] == ["stem.0.weight", "stem.0.bias"]
    assert "hm.0.weight" in keys and "hm.2.bias" in keys and "wh.2.weight" in keys
    assert keys.index("hm.2.bias") < keys.index("wh.0.weight")


def test_infer_gives_each_output_shape_and_merge_rows():
    rows = infer(two_heads(), (2, 3, 8, 6))
    by = {r.path: r for r in rows}
    assert by["cat"].output_shape == (2, 8, 8, 6)
    assert by["up"].output_shape == (2, 4, 8, 6)
    assert rows[-1].output_shape == {"hm": (2, 3, 8, 6), "wh": (2, 2, 8, 6)}
    summary = xinit.summary(two_heads(), (2, 3, 8, 6))
    assert "{hm: 2x3x8x6, wh: 2x2x8x6}" in summary.caption()


def test_same_values_everywhere_and_state_moves_between_frameworks():
    require_backends(*FRAMEWORKS)
    spec, x = two_heads(), rand(2, 3, 8, 6)
    mods = {b: xinit.build(spec, b, seed=4, rng="xinit") for b in FRAMEWORKS}
    xinit.randomize_batchnorm(mods["torch"], seed=5)
    for b in FRAMEWORKS[1:]:
        transfer(mods["torch"], mods[b])
    ref = xinit.run(mods["torch"], x)
    assert set(ref) == {"hm", "wh"} and ref["hm"].shape == (2, 3, 8, 6)
    for b in FRAMEWORKS[1:]:
        out = xinit.run(mods[b], x)
        assert set(out) == {"hm", "wh"}
        for key in ref:
            np.testing.assert_allclose(out[key], ref[key], rtol=1e-4, atol=1e-5)
    report = xinit.parity(mods, x)
    assert report.ok, report
    # the flax module's state loads strictly back into a fresh torch build
    fresh = xinit.build(spec, "torch", seed=9)
    load_state_dict(fresh, state_dict(mods["flax"]))
    np.testing.assert_allclose(xinit.run(fresh, x)["wh"], ref["wh"], rtol=1e-4, atol=1e-5)


def test_port_a_graph_checkpoint_to_paddle_and_flax():
    require_backends(*FRAMEWORKS)
    import paddle
    from flax import nnx

    spec, x = two_heads(), rand(1, 3, 4, 4)
    native = xinit.build(spec, "torch", seed=1)
    want = xinit.run(native, x)
    ckpt = {k: v.detach().numpy() for k, v in native.state_dict().items()}
    to_paddle = xinit.port(ckpt, spec, src="torch", dst="paddle")
    module = xinit.build(spec, "paddle", seed=2)
    missing, unexpected = module.set_state_dict(
        {k: paddle.to_tensor(v) for k, v in to_paddle.items()}
    )
    assert not missing and not unexpected
    np.testing.assert_allclose(xinit.run(module, x)["hm"], want["hm"], rtol=1e-5, atol=1e-6)
    to_flax = xinit.port(ckpt, spec, src="torch", dst="flax")
    assert to_flax["hm.0.kernel"].shape == (3, 3, 8, 8)
    module = xinit.build(spec, "flax", seed=2)
    _, st = nnx.split(module)
    nnx.replace_by_pure_dict(st, _nest(to_flax))
    nnx.update(module, st)
    np.testing.assert_allclose(xinit.run(module, x)["wh"], want["wh"], rtol=1e-4, atol=1e-5)


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_tuple_outputs_and_two_inputs(backend):
    require_backend(backend)
    spec = Graph(
        {
            "a": (Conv(3, 4, 1), "image"),
            "b": (Conv(2, 4, 1), "guide"),
            "gate": (Mul(), ("a", "b")),
            "sum": (Add(), ("a", "b", "gate")),
        },
        inputs=("image", "guide"),
        outputs=("sum", "gate"),
    )
    module = xinit.build(spec, backend, seed=0, rng="xinit")
    x, g = rand(2, 3, 5, 5), rand(2, 2, 5, 5, seed=1)
    total, gate = xinit.run(module, (x, g))
    sd = state_dict(module)
    a = np.einsum("oi,nihw->nohw", sd["a.weight"][:, :, 0, 0], x) + sd["a.bias"][:, None, None]
    b = np.einsum("oi,nihw->nohw", sd["b.weight"][:, :, 0, 0], g) + sd["b.bias"][:, None, None]
    np.testing.assert_allclose(gate, a * b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(total, a + b + a * b, rtol=1e-4, atol=1e-5)


def _torch_interpolate(x, **kw):
    torch = pytest.importorskip("torch")
    return torch.nn.functional.interpolate(torch.from_numpy(x), **kw).numpy()


UPSAMPLES = [
    dict(scale_factor=2, mode="nearest"),
    dict(scale_factor=3, mode="nearest"),
    dict(size=(12, 4), mode="nearest"),
    dict(scale_factor=2, mode="bilinear", align_corners=False),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(7, 5), mode="bilinear", align_corners=False),
    dict(size=(7, 5), mode="bilinear", align_corners=True),
    dict(scale_factor=1.5, mode="bilinear", align_corners=False),
]


@pytest.mark.parametrize("kw", UPSAMPLES, ids=lambda kw: "-".join(map(str, kw.values())))
def test_upsample_means_torch_interpolate_in_every_framework(kw):
    x = rand(2, 3, 6, 4, seed=2)
    want = _torch_interpolate(x, **kw)
    spec = Upsample(**kw)
    assert infer(spec, x.shape)[-1].output_shape == want.shape
    for b in FRAMEWORKS:
        require_backend(b)
        got = xinit.run(xinit.build(spec, b), x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=b)


def test_jax_own_resizer_differs_from_torch_where_ours_agrees():
    """Why Flax's Upsample is written out: ``jax.image.resize`` has no align_corners, picks
    other nearest sources for non-integer ratios and antialiases when shrinking. (Paddle's
    ``interpolate`` agrees with torch at its default ``align_mode=0``; the adapter uses the
    same resize matrix as Flax's all the same, so there is one implementation to test.)"""
    require_backend("flax")
    import jax

    x = rand(1, 1, 5, 4, seed=3)
    cases = [
        ((1, 1, 10, 8), dict(scale_factor=2, mode="bilinear", align_corners=True), "bilinear"),
        ((1, 1, 7, 5), dict(size=(7, 5), mode="nearest"), "nearest"),
        ((1, 1, 3, 3), dict(size=(3, 3), mode="bilinear"), "bilinear"),
    ]
    for shape, kw, method in cases:
        want = _torch_interpolate(x, **kw)
        theirs = np.asarray(jax.image.resize(x, shape, method))
        assert np.abs(theirs - want).max() > 1e-2, kw
        if kw["mode"] == "nearest":
            with pytest.raises(SpecError, match="integer multiples"):
                Upsample(**kw).output_shape(x.shape)
            continue
        ours = xinit.run(xinit.build(Upsample(**kw), "flax"), x)
        np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)


# ---- bad graphs: SpecError before building, naming nodes and shapes -----------------------
def test_concat_of_mismatched_sizes_names_both_nodes():
    spec = Graph(
        {"a": Conv(3, 4, 1), "b": (Conv(3, 4, 3, stride=2), "x"), "c": (Concat(), ("a", "b"))}
    )
    with pytest.raises(SpecError, match=r"c: .*a \(1, 4, 8, 8\), b \(1, 4, 3, 3\)"):
        infer(spec, (1, 3, 8, 8))


def test_add_of_mismatched_channels_fails_the_build_check():
    spec = Graph({"a": Conv(3, 4, 1), "b": (Conv(3, 5, 1), "x"), "s": (Add(), ("a", "b"))})
    require_backend("torch")
    with pytest.raises(SpecError, match=r"s: add needs equal channel counts.*a 4, b 5"):
        xinit.build(spec, "torch")


def test_unknown_input_cycle_duplicate_and_arity():
    with pytest.raises(SpecError, match="node 'b' takes input 'nope', which names no node"):
        Graph({"a": Conv(3, 4, 1), "b": (ReLU(), "nope")})
    with pytest.raises(SpecError, match="a cycle among nodes a, b"):
        Graph({"a": (Add(), ("x", "b")), "b": (ReLU(), "a")})
    with pytest.raises(SpecError, match="duplicate name 'a'"):
        Graph([("a", ReLU()), ("a", ReLU())])
    with pytest.raises(SpecError, match="duplicate name 'x' \\(already a graph input\\)"):
        Graph({"x": ReLU()})
    with pytest.raises(SpecError, match="takes one input"):
        Graph({"a": ReLU(), "b": (ReLU(), ("x", "a"))})
    with pytest.raises(SpecError, match="output 'y' is 'z', which names no node"):
        Graph({"a": ReLU()}, outputs={"y": "z"})


def test_nearest_upsampling_needs_an_integer_multiple():
    spec = Graph({"a": Conv(3, 4, 1), "up": Upsample(size=(10, 8))})
    with pytest.raises(SpecError, match=r"up: .*nearest.*integer multiples: 4 -> 10"):
        infer(spec, (1, 3, 4, 4))
    assert infer(Upsample(size=(10, 8), mode="bilinear"), (1, 3, 4, 4))[-1].output_shape == (
        1,
        3,
        10,
        8,
    )


def test_merge_of_a_dict_output_names_the_missing_key():
    inner = Graph({"a": Conv(3, 4, 1)}, outputs={"a": "a"})
    spec = Graph({"enc": inner, "use": (ReLU(), "enc.b")})
    with pytest.raises(SpecError, match="node 'enc' has no output 'b'"):
        infer(spec, (1, 3, 4, 4))


def test_linear_head_after_graph_node():
    spec = Graph({"c": Conv(3, 2, 4), "f": xinit.layers.Flatten(), "fc": Linear(2, 3)})
    assert infer(spec, (1, 3, 4, 4))[-1].output_shape == (1, 3)


# ---- layout ops and Linear on N-d input ---------------------------------------------------
def test_layout_ops_and_nd_linear_mean_torch_in_every_framework():
    """Reshape, permute, partial flatten and Linear on the last dim of a 4-d input, checked
    against the same computation in numpy from the built weights."""
    from xinit.layers import Flatten, Permute, Reshape

    spec = Sequential(
        {
            "conv": Conv(3, 6, 1),
            "perm": Permute((0, 2, 3, 1)),  # N, H, W, C
            "fc": Linear(6, 4),  # on the last dim, as torch.nn.Linear
            "flat": Flatten(1, 2),  # N, H*W, 4
            "view": Reshape((4, -1)),  # N, 4, H*W (a reshape, not a transpose)
        }
    )
    x = rand(2, 3, 5, 3, seed=7)
    assert infer(spec, x.shape)[-1].output_shape == (2, 4, 15)
    for b in FRAMEWORKS:
        require_backend(b)
        module = xinit.build(spec, b, seed=3, rng="xinit")
        sd = state_dict(module)
        y = np.einsum("oi,nihw->nohw", sd["conv.weight"][:, :, 0, 0], x)
        y = y + sd["conv.bias"][:, None, None]
        y = y.transpose(0, 2, 3, 1) @ sd["fc.weight"].T + sd["fc.bias"]
        want = y.reshape(2, 15, 4).reshape(2, 4, 15)
        np.testing.assert_allclose(xinit.run(module, x), want, rtol=1e-4, atol=1e-5, err_msg=b)


def test_layout_op_errors_name_the_shapes():
    from xinit.layers import Permute, Reshape

    with pytest.raises(SpecError, match=r"Reshape: \(1, 3, 4, 4\) has 48 values per sample"):
        infer(Reshape((5, 5)), (1, 3, 4, 4))
    with pytest.raises(SpecError, match="not a permutation"):
        Permute((0, 2, 2))
    with pytest.raises(SpecError, match=r"Linear expects 6 input features in the last dim; got 5"):
        infer(Linear(6, 2), (1, 3, 5))


def test_diagnose_a_graph_of_several_outputs_in_every_framework():
    """The diagnostic loss is sum(y**2) over all the outputs; the three frameworks hold the
    same weights (rng="xinit"), so their losses and the heads' gradients agree."""
    require_backends(*FRAMEWORKS)
    spec = two_heads()
    d = xinit.diagnose(spec, (2, 3, 8, 6), frameworks=FRAMEWORKS)
    losses = {backend: loss for backend, _, loss in d.loss}
    assert set(losses) == set(FRAMEWORKS) and all(v > 0 for v in losses.values())
    for b in FRAMEWORKS[1:]:
        assert losses[b] == pytest.approx(losses["torch"], rel=1e-4)
    heads = {r.path: r for r in d.run("flax", d.runs[-1][1]) if r.path in ("hm.2", "wh.2")}
    assert set(heads) == {"hm.2", "wh.2"} and all(r.grad_std > 0 for r in heads.values())
