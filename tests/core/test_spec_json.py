"""Specs are data: every spec round-trips through JSON exactly (``xinit.save_spec`` /
``load_spec``, ``spec_to_json`` / ``spec_from_json``), and a loaded spec builds
bit-identically in torch and Paddle.

"Exactly" is checked strictly, not by ``==`` alone (which takes ``1 == 1.0 == True`` and
ignores the attributes a spec read from a native model carries beside its fields): every
field has the original's type and value (floats to the bit), and the hidden attributes are
the original's. The cases are read from the registry and the zoo when pytest collects this
file, so a new layer kind, initializer or zoo model is covered without being listed here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np
import pytest
from helpers import require_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_property_graphs import graphs
from test_property_specs import specs

import xinit
from xinit import init, kinds, spec_json, transformer
from xinit.blocks import Residual, Sequential
from xinit.graph import Graph
from xinit.layers import (
    BatchNorm,
    Concat,
    Conv,
    LeakyReLU,
    Linear,
    MaxPool,
    ReLU,
)

CACHES = {"_params_cache", "_xinit_maps"}


def pytest_generate_tests(metafunc):
    """Parametrise over the kinds registered and the zoo models listed at collection time."""
    if "kind" in metafunc.fixturenames:
        metafunc.parametrize("kind", kinds.names())
    if "zoo_model" in metafunc.fixturenames:
        metafunc.parametrize("zoo_model", sorted(xinit.models.ZOO))


# ---- the strict comparison ------------------------------------------------------------------
def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def assert_same(a, b, where: str = "spec") -> None:
    """``b`` is ``a`` exactly: same types throughout, floats to the bit (nan included),
    tuples as tuples, and a spec's hidden attributes (not its caches) equal."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, float):
        assert _bits(a) == _bits(b) or (math.isnan(a) and math.isnan(b)), f"{where}: {a} {b}"
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
        hidden_a = {k: v for k, v in vars(a).items() if k.startswith("_") and k not in CACHES}
        hidden_b = {k: v for k, v in vars(b).items() if k.startswith("_") and k not in CACHES}
        assert_same(hidden_a, hidden_b, f"{where} (attributes beside its fields)")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"
    assert a == b or (isinstance(a, float) and math.isnan(a)), where


def round_trip(spec):
    """``spec`` saved as text and read back; the text of the copy is the same text."""
    text = xinit.spec_to_json(spec)
    loaded = xinit.spec_from_json(text)
    assert_same(spec, loaded)
    assert xinit.spec_to_json(loaded) == text
    return loaded


# ---- every kind, initializer, container, factory and zoo model ------------------------------
def _with_initializers(spec):
    """``spec`` with each of its initializer fields (``weight_init``, ``init``...) that is
    None set to a non-default initializer, so nested initializers are exercised too."""
    changes = {}
    for f in dataclasses.fields(spec):
        if f.name.endswith("init") and getattr(spec, f.name) is None:
            changes[f.name] = init.TruncatedNormal(0.1, 1 / 3, -0.7, 0.9)
    return dataclasses.replace(spec, **changes) if changes else spec


def test_every_kind_round_trips(kind):
    spec = kinds.example(kind).spec
    round_trip(spec)
    varied = _with_initializers(spec)
    round_trip(varied)
    if varied is not spec:  # the document holds the nested initializer, tagged
        doc = spec_json.spec_to_dict(varied)["spec"]
        assert {"initializer": "TruncatedNormal"}.items() <= next(
            v for k, v in doc.items() if k.endswith("init") and isinstance(v, dict)
        ).items()


# one instance of each initializer with arguments other than its defaults; the test below
# fails when an initializer is added to xinit.init without a case here
INITIALIZERS = [
    init.Constant(0.3),
    init.Zeros(),
    init.Ones(),
    init.Normal(-0.5, 1 / 3),
    init.Uniform(-0.1, 0.7),
    init.TruncatedNormal.in_stds(0.0, 0.02, -3.0, 2.5),
    init.VarianceScaling(2.0, "fan_avg", "uniform"),
    init.XavierUniform(gain=math.pi),
    init.XavierNormal(gain=0.1),
    init.KaimingUniform(a=math.sqrt(5.0)),
    init.KaimingNormal(a=0.2, mode="fan_out", nonlinearity="leaky_relu"),
    init.LecunNormal(),
    init.LecunUniform(),
    init.Orthogonal(gain=1.5, blocks=4),
    init.Dirac(groups=2),
    init.Eye(),
    init.BiasPrior(0.01),
    init.AsLinear(init.KaimingNormal(mode="fan_out")),
    init.Default("paddle"),
]


def test_every_initializer_round_trips_and_resolves_the_same_law():
    assert sorted(type(i).__name__ for i in INITIALIZERS) == init._names()
    for initializer in INITIALIZERS:
        make = Conv if isinstance(initializer, init.Dirac) else Linear  # a law for its weight
        spec = make(4, 4, 3, weight_init=initializer) if make is Conv else Linear(6, 4)
        spec = dataclasses.replace(spec, weight_init=initializer)
        loaded = round_trip(spec)
        p, q = spec.params()[0], loaded.params()[0]
        want = p.init.resolve(p.shape, p.role, p.fans, param=p)
        assert str(q.init.resolve(q.shape, q.role, q.fans, param=q)) == str(want)


def test_every_zoo_model_round_trips(zoo_model):
    round_trip(xinit.models.get(zoo_model))


def test_the_transformer_factories_round_trip():
    for spec in (
        transformer.TransformerEncoderLayer(16, 4, 32, activation="gelu", norm_first=True),
        transformer.TransformerDecoderLayer(16, 4, 32, cross_attn_name="cross_attn"),
        transformer.TransformerEncoder(transformer.TransformerEncoderLayer(16, 2, 32), 2),
        transformer.TransformerDecoder(
            transformer.TransformerDecoderLayer(16, 2, 32), 2, norm=xinit.layers.LayerNorm(16)
        ),
    ):
        loaded = round_trip(spec)
        assert loaded.kind == spec.kind != "graph"


def test_graph_forms_round_trip():
    """Inputs, taps of a dict-returning node (``"a.b"``), one output, a tuple and a dict of
    outputs, nested graphs, a Sequential reusing its ReLU, a Residual with a shortcut and
    none, and a learned parameter node with no leaf name."""
    conv = Conv(3, 4, 3, padding=1)
    inner = Graph({"c": conv, "r": ReLU()}, outputs={"feat": "c", "act": "r"})
    reused = Sequential(
        ("conv", Conv(4, 4, 1)), ("relu", ReLU()), ("bn", BatchNorm(4)), ("relu", ReLU())
    )
    res = Residual(
        Sequential({"conv1": Conv(4, 4, 3, padding=1), "bn1": BatchNorm(4)}),
        shortcut=Sequential(Conv(4, 4, 1), BatchNorm(4)),
        activation=LeakyReLU(0.1),
    )
    nodes = [
        ("stem", inner, ("x",)),
        ("body", reused, ("stem.act",)),
        ("res", Residual(Sequential({"a": ReLU()}), activation=None), ("body",)),
        ("block", res, ("res",)),
        ("cat", Concat(1), ("stem.feat", "block", "y")),
        ("pool", MaxPool(2), ("cat",)),
    ]
    for outputs in ("pool", ("pool", "cat", "stem.feat"), {"out": "pool", "aux": "stem.act"}):
        for kind in ("graph", "my_block"):
            graph = Graph(nodes, inputs=("x", "y"), outputs=outputs, kind=kind)
            loaded = round_trip(graph)
            assert (loaded.returns, loaded.order) == (graph.returns, graph.order)


@pytest.mark.skipif(
    not hasattr(xinit.layers, "Split"), reason="the ops helper's Split is not merged yet"
)
def test_a_split_node_round_trips():
    split = xinit.layers.Split((2, 2), 1)
    graph = Graph({"s": split, "r": (ReLU(), "s.1")}, outputs=("s.0", "r"))
    round_trip(graph)


def test_floats_are_exact_and_the_non_finite_are_tagged():
    spec = Sequential(
        LeakyReLU(0.1 + 0.2),
        LeakyReLU(5e-324),
        LeakyReLU(-0.0),
        Linear(2, 2, weight_init=init.Uniform(-1.7976931348623157e308, 1e308)),
    )
    text = xinit.spec_to_json(spec)
    assert "0.30000000000000004" in text and "5e-324" in text and "-0.0" in text
    round_trip(spec)
    doc = spec_json.spec_to_dict(Sequential(LeakyReLU(float("inf"))))
    assert doc["spec"]["steps"][0]["spec"]["negative_slope"] == {"float": "inf"}
    assert "Infinity" not in json.dumps(doc)  # standard JSON, which any reader takes


# ---- the attributes specs read from native models carry beside their fields -----------------
def test_flax_cell_mark_round_trips_and_keeps_the_cell_layout():
    """A spec read from Flax's own cell carries ``_xinit_flax_cell``, which changes its Flax
    map (one stacked kernel per side, the cell's own layout) and its Flax defaults; it is not
    derived from the fields, so it is saved. Caches (``_params_cache``, ``_xinit_maps``) are
    derived and are not."""
    from xinit.backends import part
    from xinit.backends.flax.recurrent_lowerings import cell_spec

    registry = part("flax", "lowerings").REGISTRY
    spec = cell_spec("OptimizedLSTMCell", 3, 4)
    plain = dataclasses.replace(spec)  # the same fields, no mark
    assert plain == spec and registry.param_map(plain) != registry.param_map(spec)
    text = xinit.spec_to_json(spec)  # the map (a cache) is computed on spec by now
    assert '"_xinit_flax_cell": "OptimizedLSTMCell"' in text and "_xinit_maps" not in text
    loaded = round_trip(spec)
    assert registry.param_map(loaded) == registry.param_map(spec)
    default = init.Default("flax")
    for p, q in zip(spec.params(), loaded.params()):
        assert str(default.resolve(p.shape, p.role, param=p)) == str(
            default.resolve(q.shape, q.role, param=q)
        )


def test_enclosing_block_round_trips_from_a_real_torch_transformer():
    """The layers torch's ``nn.Transformer`` re-initialises are read with
    ``_xinit_enclosing``: ``Default("torch")`` then gives Xavier, not the Linear's own law;
    the loaded layer gives the same."""
    require_backend("torch")
    import torch

    from xinit.native import enclosing_block, read_layers

    layers = read_layers(torch.nn.Transformer(8, 2, 1, 1, 16, batch_first=True))
    path, _, spec = next(row for row in layers if row[0].endswith("linear1"))
    assert enclosing_block(spec) is not None
    loaded = round_trip(spec)
    assert enclosing_block(loaded) == enclosing_block(spec)
    weight = spec.params()[0]
    law = init.Default("torch").resolve(weight.shape, weight.role, param=loaded.params()[0])
    bound = math.sqrt(6 / sum(weight.shape))
    assert str(law) == str(init.Default("torch").resolve(weight.shape, param=weight))
    assert f"{bound:.4g}" in str(law), (path, law)


# ---- files, and a loaded spec builds bit-identically ----------------------------------------
def test_save_and_load_a_file(tmp_path):
    spec = xinit.models.resnet18(num_classes=7)
    path = xinit.save_spec(spec, tmp_path / "specs" / "resnet18.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (document["format"], document["version"]) == ("xinit-spec", 1)
    assert document["spec"]["steps"][0] == {
        "name": "conv1",
        "spec": document["spec"]["steps"][0]["spec"],
    }
    assert_same(spec, xinit.load_spec(path))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert max(map(len, lines)) <= 96  # what fits on a line, one field a line otherwise
    assert '"in_channels": 3,' in {line.strip() for line in lines}


BUILT = [
    ("lenet", {}, (2, 3, 32, 32)),
    ("resnet18", {"num_classes": 10}, (1, 3, 32, 32)),
    ("crnn", {"width": 0.25, "hidden_size": 16}, (1, 3, 32, 64)),
    ("vit", {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32}, (1, 3, 32, 32)),
    ("gpt2", {"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 50, "n_positions": 16}, None),
]


@pytest.mark.parametrize("framework", ["torch", "paddle"])
@pytest.mark.parametrize(("model", "kwargs", "shape"), BUILT, ids=[b[0] for b in BUILT])
def test_a_loaded_zoo_model_builds_bit_identically(framework, model, kwargs, shape, tmp_path):
    require_backend(framework)
    factory = xinit.models.vit.vision_transformer if model == "vit" else xinit.models.ZOO[model]
    spec = factory(**kwargs)
    loaded = xinit.load_spec(xinit.save_spec(spec, tmp_path / "spec.json"))
    a, b = (xinit.build(s, framework, seed=3, rng="xinit") for s in (spec, loaded))
    sa, sb = xinit.state_dict(a), xinit.state_dict(b)
    assert list(sa) == list(sb) and sa
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and sa[key].tobytes() == sb[key].tobytes(), key
    rng = np.random.default_rng(0)
    x = rng.integers(0, 50, (1, 8)) if shape is None else rng.standard_normal(shape)
    x = x.astype(np.int64 if shape is None else np.float32)
    assert np.asarray(xinit.run(a, x)).tobytes() == np.asarray(xinit.run(b, x)).tobytes()


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_every_kind_loaded_builds_bit_identically(framework):
    """Each kind's example, with nested initializers, in a one-node graph: the same state,
    bit for bit, from the loaded spec (``rng="native"``: the framework's own draws)."""
    require_backend(framework)
    for kind in kinds.names():
        example = kinds.example(kind)
        names = tuple(f"x{i}" for i in range(len(example.inputs)))
        spec = Graph({"layer": (_with_initializers(example.spec), names)}, inputs=names)
        loaded = xinit.spec_from_json(xinit.spec_to_json(spec))
        a, b = (xinit.build(s, framework, seed=5, rng="native") for s in (spec, loaded))
        sa, sb = xinit.state_dict(a), xinit.state_dict(b)
        assert list(sa) == list(sb), kind
        for key in sa:
            assert sa[key].tobytes() == sb[key].tobytes(), (kind, key)


# ---- random specs ---------------------------------------------------------------------------
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SETTINGS
@given(drawn=graphs(), chain=specs())
def test_random_graphs_and_chains_round_trip(drawn, chain):
    round_trip(drawn[0])
    round_trip(chain[0])


@SETTINGS
@given(
    slope=st.floats(allow_nan=True, allow_infinity=True),
    std=st.floats(min_value=5e-324, max_value=1e38),
    eps=st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
)
def test_random_floats_come_back_to_the_bit(slope, std, eps):
    spec = Sequential(LeakyReLU(slope), BatchNorm(2, eps=eps, weight_init=init.Normal(0.0, std)))
    round_trip(spec)


# ---- bad input: an XinitError naming the JSON path --------------------------------------------
def _document(spec=None) -> dict:
    return spec_json.spec_to_dict(spec or Sequential({"conv": Conv(3, 4, 3), "relu": ReLU()}))


def _refused(document, *expected: str) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(xinit.SpecFormatError) as info:
        xinit.spec_from_json(text)
    assert isinstance(info.value, (xinit.XinitError, ValueError))
    for part in expected:
        assert part in str(info.value), str(info.value)
    return str(info.value)


def test_an_unknown_kind_is_named_with_its_path_and_the_known_kinds():
    doc = _document()
    doc["spec"]["steps"][0]["spec"]["kind"] = "convv"
    message = _refused(
        doc,
        "$.spec.steps[0].spec.kind",
        "unknown layer kind 'convv'; did you mean 'conv'?",
        "conv,",
    )
    assert all(k in message for k in ("batchnorm", "linear", "relu"))


def test_unknown_and_missing_fields_are_named():
    doc = _document()
    doc["spec"]["steps"][0]["spec"]["kernal_size"] = [3, 3]
    _refused(doc, "$.spec.steps[0].spec", "Conv has no field 'kernal_size'", "kernel_size")
    doc = _document()
    del doc["spec"]["steps"][0]["spec"]["in_channels"]
    _refused(doc, "$.spec.steps[0].spec", "Conv needs field 'in_channels'")
    doc = _document()
    doc["spec"]["steps"][1]["extra"] = 1
    _refused(doc, "$.spec.steps[1]", "no field 'extra'")


def test_versions_and_formats():
    doc = _document()
    doc["version"] = 2
    _refused(doc, "$.version", "reads version 1; got 2", "newer xinit")
    doc["version"] = True
    _refused(doc, "$.version")
    del doc["version"]
    _refused(doc, "$.version", "got null")
    doc = _document()
    doc["format"] = "onnx"
    _refused(doc, "$.format", "'xinit-spec'")
    _refused("[1, 2]", "$: expected a spec document")
    _refused("{not json", "not JSON")


def test_values_a_spec_refuses_are_named_with_their_path():
    doc = _document()
    doc["spec"]["steps"][0]["spec"]["kernel_size"] = ["3", 3]
    _refused(doc, "$.spec.steps[0].spec: Conv:", "kernel_size")
    doc = _document()
    doc["spec"]["steps"][0]["spec"]["weight_init"] = {"initializer": "Normal", "std": -1.0}
    _refused(doc, "$.spec.steps[0].spec.weight_init: Normal:", "std")
    doc["spec"]["steps"][0]["spec"]["weight_init"] = {"initializer": "Gaussian"}
    _refused(doc, "$.spec.steps[0].spec.weight_init.initializer", "unknown initializer", "Normal")
    doc["spec"]["steps"][0]["spec"]["weight_init"] = {"mean": 0.0}
    _refused(doc, "$.spec.steps[0].spec.weight_init: an object must be a spec")
    doc = _document(Graph({"a": ReLU(), "b": (ReLU(), "a")}))
    doc["spec"]["nodes"][1]["inputs"] = ["nowhere"]
    _refused(doc, "$.spec: Graph:", "'nowhere', which names no node")
    doc["spec"]["nodes"][1]["inputs"] = "a"
    _refused(doc, "$.spec.nodes[1].inputs: expected a list of names")


def test_json_that_is_not_plain_data_is_refused():
    text = xinit.spec_to_json(Sequential(LeakyReLU(0.5)))
    _refused(text.replace("0.5", "NaN"), "NaN is not JSON")
    _refused(text.replace('"kind": "sequential"', '"kind": "sequential", "kind": "relu"'), "twice")
    doc = _document()
    doc["spec"]["steps"][0]["spec"]["_secret"] = 1
    _refused(doc, "$.spec.steps[0].spec", "unknown attribute '_secret'")
    doc = _document()
    doc["spec"]["steps"][0]["spec"]["_xinit_enclosing"] = {"framework": "torch"}
    _refused(doc, "$.spec.steps[0].spec._xinit_enclosing", "expected an object of strings")
    deep = '{"format": "xinit-spec", "version": 1, "spec": ' + "[" * 5000 + "]" * 5000 + "}"
    _refused(deep, "nested")


def test_what_cannot_be_saved_is_refused_not_lost():
    from xinit.native import OwnTensors

    spec = Conv(3, 4, 3)
    object.__setattr__(spec, "_note", "mine")
    with pytest.raises(xinit.SpecFormatError, match=r"\$\.spec: Conv carries attribute '_note'"):
        xinit.spec_to_json(spec)
    with pytest.raises(xinit.SpecFormatError, match=r"\$\.spec.steps\[1\].spec: OwnTensors"):
        xinit.spec_to_json(Sequential(ReLU(), OwnTensors("MyLayer")))
    with pytest.raises(xinit.SpecFormatError, match="expected a spec"):
        xinit.spec_to_json("resnet18")

    class MyNormal(init.Normal):  # a subclass that reads like xinit's own
        pass

    MyNormal.__name__ = "Normal"
    with pytest.raises(xinit.SpecFormatError, match=r"weight_init: Normal is no initializer"):
        xinit.spec_to_json(Linear(2, 2, weight_init=MyNormal()))


def test_load_spec_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "xinit-spec", "version": 9, "spec": {}}')
    with pytest.raises(xinit.SpecFormatError, match=r"bad\.json: \$\.version"):
        xinit.load_spec(path)


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_0", "vit"])
def test_traced_torchvision_specs_round_trip(name):
    """A spec xinit.trace made (nested graphs named by the model's attributes, functional
    ops, learned parameters) is data too: equal once loaded, the same state keys built."""
    require_backend("torch")
    import torch
    from real_models import vision

    models = vision("torchvision").models
    torch.manual_seed(0)
    if name == "vit":
        model = models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)
    else:
        model = getattr(models, name)(num_classes=10)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 64, 64), np.float32))
    spec = xinit.trace(model.eval(), x[..., :32, :32] if name == "vit" else x)
    loaded = round_trip(spec)
    assert sorted(xinit.blocks.param_specs(loaded)) == sorted(model.state_dict())
