"""Blocks in the defaults catalogue (transformer layers, ``xinit.defaults.blocks``): their rows
are their layers' rows under the framework's child paths, what a framework's own block adds
is measured on that block (torch's ``nn.Transformer`` re-draws), and a block is one
registration."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from defaults_native import block_state
from helpers import require_backend
from stats_helpers import N_MIN, assert_ks_one, assert_ks_two, assert_same_law

import xinit
from xinit import defaults as D
from xinit.distributions import ConstantDist, UniformDist

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _child_entry(framework: str, d, path: str) -> D.DefaultEntry:
    """The catalogue entry of the layer that holds ``path`` of block ``d``, read from the
    block's xinit graph (not from the catalogue's composition)."""
    from xinit.blocks import param_specs
    from xinit.transformer import TransformerDecoderLayer, TransformerEncoderLayer

    n = D.layer_numbers(d)
    e, h, f = n["in"], n["heads"], n["out"]
    if d.kind == "transformer":  # encoder.layers.0.* / decoder.layers.0.*, and each norm
        stack, _, rest = path.partition(".")
        if rest.startswith("norm."):
            return D.default_entry(framework, D.layer_spec("layernorm", e), rest[len("norm.") :])
        layer = dict(encoder=TransformerEncoderLayer, decoder=TransformerDecoderLayer)[stack]
        graph, path = layer(e, h, f), rest[len("layers.0.") :]
    elif d.kind == "transformer_encoder_layer":
        graph = TransformerEncoderLayer(e, h, f)
    else:
        graph = TransformerDecoderLayer(e, h, f)
    p = param_specs(graph)[path]
    return D.default_entry(framework, p.layer, p.name)


BLOCK_DIMS = [D.layer_spec(b, 64, heads=4) for b in D.BLOCKS] + [
    D.layer_spec("transformer_decoder_layer", 96, 200, heads=3)
]


@pytest.mark.parametrize("d", BLOCK_DIMS, ids=lambda d: f"{d.kind}-{D.layer_numbers(d)['in']}")
def test_block_rows_are_their_layers_rows(d):
    """Each framework's row for a block parameter is its layer's row (the same initializer,
    fans and law, the native names under the framework's child path), except where the
    framework's block re-initialises: torch's nn.Transformer, Xavier on every >1-d tensor
    with the tensor's own fans."""
    paths = [e.param for e in D.catalogue(d, frameworks=("torch",))]
    assert (
        len(paths)
        == len(set(paths))
        == {"transformer_encoder_layer": 12}.get(
            d.kind, 18 if d.kind == "transformer_decoder_layer" else 12 + 2 + 18 + 2
        )
    )
    for fw in D.FRAMEWORKS:
        assert D.params_of(fw, d) == tuple(paths), fw  # every framework has every parameter
        for path in paths:
            entry, child = D.default_entry(fw, d, path), _child_entry(fw, d, path)
            owner = path[: -len(child.param) - 1]
            if fw == "paddle":  # Paddle names the decoder's cross-attention cross_attn
                owner = owner.replace("multihead_attn", "cross_attn")
            assert entry.leaves == tuple((f"{owner}.{n}", s) for n, s in child.leaves), path
            assert entry.neutral_shape == child.neutral_shape and entry.note, (fw, path)
            if fw == "torch" and d.kind == "transformer" and len(entry.neutral_shape) > 1:
                out, fan_in = entry.neutral_shape
                bound = math.sqrt(6 / (fan_in + out))
                assert entry.distribution == UniformDist(-bound, bound), path
                assert "xavier_uniform_" in entry.rule and child.rule in entry.rule, path
                continue
            assert (entry.initializer, entry.fans, entry.distribution) == (
                child.initializer,
                child.fans,
                child.distribution,
            ), (fw, path)
            assert entry.rule.endswith(child.rule), (fw, path)
            assert entry.rule.startswith("composed, nnx.") == (fw == "flax"), (fw, path)


def test_block_dims_and_names():
    from xinit.transformer import TransformerDecoderLayer, TransformerEncoderLayer

    enc = D.layer_spec("TransformerEncoderLayer", 512, heads=8)
    assert enc == TransformerEncoderLayer(512, 8, 2048)  # dim_feedforward 4·d_model
    for name in ("transformer_encoder", "encoder_layer", "Transformer Encoder Layer"):
        assert D.layer_spec(name, 512, heads=8) == enc, name
    assert D.layer_name(D.layer_spec("decoder_layer", 64, 100, heads=2)) == (
        "transformer_decoder_layer"
    )
    assert D.layer_name(D.layer_spec("Transformer", 64)) == "transformer"
    assert D.is_block("transformer")
    assert not D.is_block("mha") and not D.is_block("depthwise_conv2d")
    assert D.describe(enc) == (
        "transformer_encoder_layer(d_model=512, nhead=8, dim_feedforward=2048)"
    )
    numbers = {"in": 512, "out": 2048, "kernel": [], "groups": 1, "heads": 8}
    assert D.layer_numbers(enc) == numbers  # the JSON's dims, read from the graph's layers
    assert D.as_spec(TransformerEncoderLayer(512, 8)) == enc  # torch's dim_feedforward 2048
    assert D.catalogue(TransformerEncoderLayer(512, 8)) == D.catalogue(enc)
    with pytest.raises(ValueError, match="d_model 64 is not divisible by nhead 3"):
        D.layer_spec("transformer_encoder_layer", 64, heads=3)
    with pytest.raises(ValueError, match="with bias and PyTorch's child names"):
        D.as_spec(TransformerEncoderLayer(64, 4, 128, bias=False))
    with pytest.raises(ValueError, match="with bias and PyTorch's child names"):
        D.as_spec(TransformerDecoderLayer(64, 4, 128, cross_attn_name="cross_attn"))
    with pytest.raises(ValueError, match="has no parameter 'weight'"):
        D.default_entry("torch", enc, "weight")
    with pytest.raises(ValueError, match="is a block of layers"):
        D.plot_defaults(enc, "unused.png")


def _layer_draws(framework: str, d, seed: int) -> dict[str, np.ndarray]:
    """The framework's own encoder and decoder layers for ``d``'s numbers, built one after
    the other under ``seed`` (the order nn.Transformer builds them), under nn.Transformer's
    names."""
    n = D.layer_numbers(d)
    e, h, f = n["in"], n["heads"], n["out"]
    out = {}
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        nn = torch.nn
        layers = {
            "encoder": nn.TransformerEncoderLayer(e, h, f, batch_first=True),
            "decoder": nn.TransformerDecoderLayer(e, h, f, batch_first=True),
        }
        for stack, m in layers.items():
            out |= {f"{stack}.layers.0.{n}": t.detach().numpy() for n, t in m.state_dict().items()}
        return out
    import paddle

    paddle.seed(seed)
    layers = {
        "encoder": paddle.nn.TransformerEncoderLayer(e, h, f),
        "decoder": paddle.nn.TransformerDecoderLayer(e, h, f),
    }
    for stack, m in layers.items():
        out |= {f"{stack}.layers.0.{n}": np.array(t.numpy()) for n, t in m.state_dict().items()}
    return out


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_transformer_model_reinit_is_the_catalogues(framework):
    """nn.Transformer: torch's _reset_parameters re-draws every >1-d parameter with
    xavier_uniform_ (measured: moments and KS over independent models, each tensor on its
    own), and leaves every 1-d one exactly as its layer drew it (the same values as the
    encoder and decoder layers built alone, in the same order, under the same seed); Paddle's
    re-draws nothing (every value equal). The layers' own laws are measured above."""
    require_backend(framework)
    d = D.layer_spec("transformer", 128, 512, heads=4)
    entries = D.catalogue(d, frameworks=(framework,))
    redrawn = [e for e in entries if e.rule.startswith("xavier_uniform_ (nn.Transformer")]
    assert (len(redrawn) == 10) == (framework == "torch") and (framework == "torch" or not redrawn)
    # the smallest re-drawn tensor, out_proj.weight (E, E), has 16384 elements: 4 models
    draws = math.ceil(N_MIN / 128**2)
    states = [block_state(framework, d, 9000 + i) for i in range(draws)]
    assert set(states[0]) == {n for e in entries for n in e.native_names}
    alone = _layer_draws(framework, d, 9000)
    for e in entries:
        for name in e.native_names:
            if e in redrawn:
                values = np.concatenate([s[name].ravel() for s in states])
                assert_same_law(values, e.distribution, f"{e.id} ({name})")
                assert not np.array_equal(states[0][name], alone[name]), name
            elif name in alone:  # a layer's parameter: exactly what the layer drew
                np.testing.assert_array_equal(states[0][name], alone[name], err_msg=name)
            else:  # encoder.norm, decoder.norm: the stacks' final LayerNorms
                assert np.all(states[0][name] == e.distribution.value), name
    assert D.native_defaults(framework, d, seed=9000).keys() == states[0].keys()


def test_flax_composes_its_layers():
    """flax.nnx has no transformer layer (checked, so a Flax that gains one fails here); the
    catalogue's Flax rows name the tensors of xinit's Flax build, which composes
    nnx.MultiHeadAttention, nnx.Linear and nnx.LayerNorm (their laws are measured above)."""
    require_backend("flax")
    from flax import nnx

    from xinit.transformer import TransformerDecoderLayer, TransformerEncoderLayer

    assert not [n for n in dir(nnx) if "transformer" in n.lower() or "encoder" in n.lower()]
    for graph in (TransformerEncoderLayer(64, 4, 128), TransformerDecoderLayer(64, 4, 128)):
        module = xinit.build(graph, "flax")
        state = {
            ".".join(map(str, path)): np.asarray(v.get_value()).shape
            for path, v in nnx.to_flat_state(nnx.state(module, nnx.Param))
        }
        entries = D.catalogue(graph, frameworks=("flax",))
        assert {n: e.native_shape for e in entries for n in e.native_names} == state
        with pytest.raises(ValueError, match="flax.nnx has no transformer layer"):
            D.native_defaults("flax", graph)


BLOCK_DEFAULTS = [(fw, backend) for fw in ("torch", "paddle") for backend in D.FRAMEWORKS]


@pytest.mark.parametrize(
    "framework, backend", BLOCK_DEFAULTS, ids=[f"{f}-in-{b}" for f, b in BLOCK_DEFAULTS]
)
def test_default_on_a_transformer_layer_reproduces_each_native_leaf(framework, backend):
    """Default(framework) in a policy on xinit's TransformerEncoderLayer graph, built in
    ``backend``: every tensor of the framework's own nn.TransformerEncoderLayer (torch's packed
    in_proj_weight, Paddle's q/k/v_proj, linear1/2, norms) gets that framework's law, the
    catalogue's block row: moments and KS for each leaf of >= N_MIN elements, KS and the
    support for torch's small random biases, two-sample KS against the native layer's."""
    from xinit.backends import part
    from xinit.blocks import param_specs
    from xinit.parammap import piece
    from xinit.state import state_dict
    from xinit.transformer import TransformerEncoderLayer

    require_backend(framework)
    require_backend(backend)
    graph = TransformerEncoderLayer(256, 8, 1024)  # each (E, E) leaf: 65536 >= N_MIN
    rule = xinit.Rule(xinit.init.Default(framework), param="*")
    built = state_dict(xinit.build(graph, backend, policy=xinit.Policy(rule), seed=11))
    native = block_state(framework, graph, 4321)
    registry = part(framework, "lowerings").REGISTRY
    specs = param_specs(graph)
    for entry in D.catalogue(graph, frameworks=(framework,)):
        p = specs[entry.param]
        leaves = registry.param_map(p.layer)[p.name]
        for name, leaf in zip(entry.native_names, leaves, strict=True):
            ours = piece(built[entry.param], leaf)
            what = f"Default({framework!r}) in {backend}: {entry.param} as {name}"
            assert ours.shape == native[name].shape == entry.native_shape, what
            dist = entry.distribution
            if isinstance(dist, ConstantDist):
                assert np.all(ours == dist.value) and np.all(native[name] == dist.value), what
                continue
            if ours.size >= N_MIN:
                assert_same_law(ours.ravel(), dist, what)
            else:  # torch's linear biases (1024 and 256): the law's support, and KS
                assert np.abs(ours).max() <= dist.high, what
                assert np.abs(ours).max() > 0.9 * dist.high, what  # P(miss) = 0.9^256 < 1e-11
                assert_ks_one(ours.ravel(), dist, what)
            assert_ks_two(ours.ravel(), native[name].ravel(), f"{what} vs its own layer")


def _mlp_block(d_in: int, heads: int, d_hidden: int):
    """A feed-forward block (no attention: ``heads`` is unused), as a toy registration."""
    from xinit import layers as L
    from xinit.graph import Graph

    nodes = [
        ("fc1", L.Linear(d_in, d_hidden)),
        ("act", L.GELU()),
        ("fc2", L.Linear(d_hidden, d_in)),
        ("norm", L.LayerNorm(d_in)),
    ]
    return Graph(nodes, kind="mlp_block")


def test_a_block_is_one_registration(monkeypatch, capsys):
    """register_block alone puts a block into the catalogue and ``xinit defaults --layer``:
    its rows are its registered children's rows (fc1, fc2, norm), its JSON dims its numbers,
    and a framework with no such block of its own says so."""
    from xinit.cli import main
    from xinit.defaults import blocks

    def numbers(graph):
        return {"in": graph.node("fc1").in_features, "out": graph.node("fc1").out_features}

    block = blocks.register_block(
        "mlp_block",
        _mlp_block,
        lambda graph: {**numbers(graph), "heads": 1},
        ("fc1", "fc2", "norm"),
        native="",
        aliases=("mlp",),
        text="{name}({in}, hidden={out})",
    )
    monkeypatch.setitem(blocks.BLOCKS, "mlp_block", block)  # unregistered after the test
    spec = D.layer_spec("MLP", 8, 32)
    assert spec == _mlp_block(8, 1, 32) and D.describe(spec) == "mlp_block(8, hidden=32)"
    rows = D.catalogue(spec, frameworks=("torch", "paddle"))
    paths = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "norm.weight", "norm.bias"]
    assert [e.param for e in rows] == [p for p in paths for _ in ("torch", "paddle")]
    for e in rows:
        child, name = spec.node(e.param.split(".")[0]), e.param.split(".")[1]
        own = D.default_entry(e.framework, child, name)
        assert (e.distribution, e.rule) == (own.distribution, own.rule), e.id
        assert e.native_names == tuple(f"{e.param.split('.')[0]}.{n}" for n in own.native_names)
        assert "no mlp_block block" in e.note or "composed" in e.note, e.note
    with pytest.raises(ValueError, match="has no mlp_block block"):
        D.native_defaults("flax", spec)
    assert main(["defaults", "--layer", "mlp", "--in", "8", "--out", "32", "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 3 * len(paths) and {r["layer"] for r in recs} == {"mlp_block"}
    assert {json.dumps(r["dims"]) for r in recs} == {
        json.dumps({"in": 8, "out": 32, "kernel": [], "groups": 1, "heads": 1})
    }
